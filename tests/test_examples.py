"""Every example runs, as a user would run it, against the fault server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from adk_retry.testing import no_waits

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("quickstart.py", "answer: Hi!"),
        ("manual_integration.py", "answer: Retried and answered."),
        ("plugin_app.py", "writer: calls=1 retries=1"),
    ],
)
def test_example_runs_as_a_script(script, expected):
    env = {k: v for k, v in os.environ.items() if k != "ADK_RETRY_MODEL"}
    env["ADK_RETRY_NO_WAITS"] = "1"  # delays are logged, not slept
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert expected in done.stdout
    assert "succeeded on attempt" in done.stdout


async def test_demo_uses_the_tool_and_retries(capsys):
    from adk_retry.demo import run_demo

    with no_waits():
        summary = await run_demo()
    out = capsys.readouterr().out
    assert 'tool call: list_files({"path": "."})' in out
    assert "README.md, calculator.py, test_calculator.py" in out
    assert summary["retries"] == 3
    assert summary["upstream requests"] == 5
