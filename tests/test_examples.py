"""Every example runs, as a user would run it, against the fault server."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from adk_retry.testing import no_waits

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# Words only litellm's debug banners print; a quiet example shows none of them.
LITELLM_BANNERS = ("LiteLLM completion()", "Give Feedback", "LiteLLM.Info", "get_model_cost_map")


def script_env() -> dict[str, str]:
    """The environment of an example run as a script: this checkout first on the path.

    A script's ``sys.path[0]`` is ``examples/``, so without this it would import
    whichever adk_retry is installed, not the code under test.
    """
    env = {k: v for k, v in os.environ.items() if k != "ADK_RETRY_MODEL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["ADK_RETRY_NO_WAITS"] = "1"  # delays are logged, not slept
    return env


def assert_quiet(output: str) -> None:
    """No litellm banner and no line printed twice in a row (litellm's handler plus the root's)."""
    for banner in LITELLM_BANNERS:
        assert banner not in output, output[-2000:]
    lines = [line for line in output.splitlines() if line.strip()]
    assert all(a != b for a, b in itertools.pairwise(lines)), output[-2000:]


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("quickstart.py", "answer: Hi!"),
        ("manual_integration.py", "answer: Retried and answered."),
        ("plugin_app.py", "writer: calls=1 retries=1"),
    ],
)
def test_example_runs_as_a_script(script, expected):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=script_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert expected in done.stdout
    assert "succeeded on attempt" in done.stdout
    assert_quiet(done.stdout + done.stderr)
    assert done.stderr == ""
    assert len(done.stdout.splitlines()) <= 15
    # Statistics are counters, not the provider's error text.
    assert "Traceback" not in done.stdout
    assert "last_error" not in done.stdout


async def test_demo_uses_the_tool_and_retries(capsys):
    from adk_retry.demo import run_demo

    with no_waits():
        summary = await run_demo()
    out = capsys.readouterr().out
    assert 'tool call: list_files({"path": "."})' in out
    assert "README.md, calculator.py, test_calculator.py" in out
    assert summary["retries"] == 3
    assert summary["upstream requests"] == 5


async def test_demo_explains_itself(capsys):
    """The transcript names the script, each fault as it is retried, and the totals."""
    from adk_retry.demo import run_demo

    with no_waits():
        summary = await run_demo()
    lines = capsys.readouterr().out.splitlines()
    # The script comes first, before the user speaks.
    script = lines[lines.index("the server's 5 scripted answers, one per request it receives:") + 1 :][:5]
    assert script == [
        '  1. fault: an answer with no message ("choices": [])',
        '  2. fault: a choice whose "message" is null',
        '  3. ok: the model asks for list_files(path=".")',
        '  4. fault: an answer with no message ("choices": [])',
        "  5. ok: the model answers from the tool's result",
    ]
    user = lines.index("user: What files are in the workspace?")
    assert user > lines.index(script[-1])
    # Each fault is labelled with its request, model call and attempt, in the order they happened.
    labelled = [line.strip() for line in lines if line.strip().startswith(("[request", "->"))]
    assert labelled[0] == '[request 1] model call 1, attempt 1 of 4: fault: an answer with no message ("choices": [])'
    # ADK 2.3 raises ValueError itself; on newer ADK adk-retry turns the empty answer into EmptyResponseError.
    assert re.match(r"-> (EmptyResponseError|ValueError): No message in response; retry 1 of 3 at once \(", labelled[1])
    assert labelled[2] == '[request 2] model call 1, attempt 2 of 4: fault: a choice whose "message" is null'
    assert labelled[3].startswith("-> litellm.InternalServerError: ")
    assert "retry 2 of 3 at once" in labelled[3]
    assert "Traceback" not in labelled[3]
    assert (
        labelled[4]
        == '[request 3] model call 1, attempt 3 of 4: ok: the model asks for list_files(path=".") -> succeeded'
    )
    assert labelled[5] == '[request 4] model call 2, attempt 1 of 4: fault: an answer with no message ("choices": [])'
    assert (
        labelled[7]
        == "[request 5] model call 2, attempt 2 of 4: ok: the model answers from the tool's result -> succeeded"
    )
    assert len(labelled) == 8
    # The summary: every count, with what it means, and why nothing slept.
    summary_lines = lines[lines.index("summary:") + 1 :]
    assert summary_lines[0] == "  model calls:       2 (the agent asked its model 2 times)"
    assert summary_lines[1].startswith("  attempts:          5 ")
    assert summary_lines[2] == "  retries:           3 (attempts after a failed one)"
    assert summary_lines[3].startswith("  upstream requests: 5 (received by the fault server; no retry layer")
    assert summary_lines[4] == (
        f"  time slept:        0s: {summary['backoff']:.2f}s of backoff computed, "
        "sleeping skipped (adk_retry.testing.no_waits())"
    )
    assert summary_lines[5].startswith("  turn took:         ")
    assert summary["sleeping skipped"] is True
    assert summary["slept"] == 0.0
    assert summary["backoff"] > 0


def test_demo_summary_says_what_was_slept():
    """When sleeping is on, the summary reports the seconds slept (no real run: the printer alone)."""
    from adk_retry.demo import _print_summary

    lines: list[str] = []
    summary = {
        "model calls": 2,
        "attempts": 5,
        "retries": 3,
        "upstream requests": 7,
        "backoff": 2.06,
        "slept": 2.06,
        "sleeping skipped": False,
        "turn took": 2.5,
    }
    _print_summary(summary, lines.append)
    assert "  time slept:        2.06s of backoff between attempts" in lines
    assert "  upstream requests: 7 (received by the fault server; 2 resent by lower layers)" in lines


def test_demo_runs_from_the_command_line_quietly():
    """``adk-retry demo`` as a user runs it: labels on stdout, nothing on stderr, no litellm banner."""
    done = subprocess.run(
        [sys.executable, "-m", "adk_retry", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env=script_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""
    assert "[request 2] model call 1, attempt 2 of 4" in done.stdout
    assert "sleeping skipped (ADK_RETRY_NO_WAITS=1)" in done.stdout
    assert_quiet(done.stdout)
    assert "Model request failed" not in done.stdout  # the labels say it; the log is for --verbose
    assert len(done.stdout.splitlines()) < 40


def test_metrics_export_shows_the_retry_storm_as_numbers():
    """The exporter example: the storm's counts, under the semantic-convention names."""
    from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GEN_AI_AGENT_NAME
    from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE

    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "metrics_export.py")],
        capture_output=True,
        text=True,
        timeout=180,
        env=script_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""
    assert_quiet(done.stdout)
    assert "Traceback" not in done.stdout
    rows = {tuple(line.split()[:2]) for line in done.stdout.splitlines() if line.startswith("  adk_retry.")}
    # 6 turns: 13 attempts (13 requests: the SDK's own retries are off), 7 retries, one give-up.
    assert "6 turns, 13 requests to the provider" in done.stdout
    assert {("adk_retry.attempts", "13"), ("adk_retry.retries", "7")} <= rows
    assert {("adk_retry.calls", "5"), ("adk_retry.calls", "1"), ("adk_retry.give_ups", "1")} <= rows
    assert ("adk_retry.backoff_delay", "count=5") in rows  # the 503s
    assert f"{GEN_AI_AGENT_NAME}=support" in done.stdout
    assert f"{ERROR_TYPE}=RateLimitError" in done.stdout
    assert "adk_retry.reason=hint" in done.stdout  # the 429 with Retry-After
    assert len(done.stdout.splitlines()) <= 20
