"""The demo: the software-engineer agent, retried through scripted faults.

Everything is real except the provider: an ADK ``Runner`` drives the agent,
whose ``LiteLlm`` model talks through litellm over HTTP to adk-retry's fault
server on 127.0.0.1. The scripted model answers with nothing twice, asks for
a real ``list_files`` tool call, answers with nothing once more, and then
answers from the tool's result. No key, no network, a few seconds.

The transcript is written for someone who has not read this file: the
scripted answers are listed first, each injected fault is labelled when the
retry it causes happens (which fault, which model call, which attempt of how
many), and a summary explains the counts at the end.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncio
import json
import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adk_retry.core._clock import waits_enabled
from adk_retry.core._events import RetryEvent
from adk_retry.core._policy import RetryPolicy
from adk_retry.testing import Fault, FaultServer

__all__ = ["DEMO_POLICY", "ScriptedAnswer", "demo_script", "quiet_console", "run_demo"]

DEMO_POLICY = RetryPolicy(base_delay=0.5, max_delay=2.0)
"""The seed's policy with shorter delays, so the demo takes seconds."""

Echo = Callable[[str], object]

_FILES = {
    "README.md": "# calculator\nA tiny calculator.\n",
    "calculator.py": "def add(a, b):\n    return a + b\n",
    "test_calculator.py": "from calculator import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
}
_QUESTION = "What files are in the workspace?"
# Error messages from litellm can be long (the provider's whole body); one line is enough here.
_ERROR_WIDTH = 100


@dataclass(frozen=True)
class ScriptedAnswer:
    """One scripted answer of the fault server and the words the demo uses for it."""

    fault: Fault
    label: str


def _answer_from_tool_result(body: dict[str, Any]) -> Fault:
    """The scripted model's last turn: summarise what list_files returned."""
    tool_messages = [m for m in body["messages"] if m.get("role") == "tool"]
    if not tool_messages:
        return Fault.ok("I could not see the tool result.")
    result = json.loads(tool_messages[-1]["content"])
    names = sorted(entry["path"] if isinstance(entry, dict) else str(entry) for entry in result.get("entries", []))
    return Fault.ok(f"The workspace holds {len(names)} files: {', '.join(names)}. Nothing was changed.")


def _fill(workspace: Path) -> None:
    for name, text in _FILES.items():
        (workspace / name).write_text(text)


def demo_script() -> list[ScriptedAnswer]:
    """The server's answers, one per upstream request, in the order they are sent."""
    return [
        ScriptedAnswer(Fault.empty_choices(), 'fault: an answer with no message ("choices": [])'),
        ScriptedAnswer(Fault.null_message(), 'fault: a choice whose "message" is null'),
        ScriptedAnswer(Fault.tool_call("list_files", {"path": "."}), 'ok: the model asks for list_files(path=".")'),
        ScriptedAnswer(Fault.empty_choices(), 'fault: an answer with no message ("choices": [])'),
        ScriptedAnswer(Fault.reply(_answer_from_tool_result), "ok: the model answers from the tool's result"),
    ]


def _model_call_number(requests: Sequence[dict[str, Any]]) -> int:
    """Which model call the newest request belongs to, from what the server saw.

    A retry resends the same conversation; a new model call (after a tool ran,
    say) sends a longer one. Counting the changes needs no handler internals.
    """
    calls, previous = 0, None
    for body in requests:
        if body.get("messages") != previous:
            calls, previous = calls + 1, body.get("messages")
    return calls


def _short(error: BaseException | None) -> str:
    if error is None:
        return "no error"
    # First line only, and without the traceback litellm glues onto some messages.
    message = str(error).split("Traceback")[0].strip().splitlines()[0] if str(error).strip() else ""
    # litellm's messages already start with their class name ("litellm.InternalServerError: ...").
    name = type(error).__name__
    text = message if name in message[: len(name) + 10] else f"{name}: {message}"
    return text if len(text) <= _ERROR_WIDTH else text[: _ERROR_WIDTH - 3] + "..."


class _Narrator:
    """A retry hook that labels each event with the fault that caused it, as it happens."""

    def __init__(self, script: Sequence[ScriptedAnswer], max_attempts: int, echo: Echo) -> None:
        self.script = script
        self.max_attempts = max_attempts
        self.echo = echo
        self.server: FaultServer | None = None

    def __call__(self, event: RetryEvent) -> None:
        if self.server is None or event.kind not in ("retry", "success_after_retry", "give_up"):
            return
        requests = self.server.requests
        # The request the event is about is the newest one the server received.
        index = len(requests) - 1
        label = self.script[index].label if index < len(self.script) else "the default answer"
        where = f"model call {_model_call_number(requests)}, attempt {event.attempt} of {self.max_attempts}"
        if event.kind == "retry":
            retries = self.max_attempts - 1
            wait = f"in {event.delay:.2f}s" if waits_enabled() else f"at once ({event.delay:.2f}s backoff not slept)"
            self.echo(f"  [request {index + 1}] {where}: {label}")
            self.echo(f"      -> {_short(event.error)}; retry {event.attempt} of {retries} {wait}")
        elif event.kind == "success_after_retry":
            self.echo(f"  [request {index + 1}] {where}: {label} -> succeeded")
        else:
            self.echo(f"  [request {index + 1}] {where}: {label} -> gave up ({event.reason}): {_short(event.error)}")


def _why_no_sleep() -> str:
    if os.environ.get("ADK_RETRY_NO_WAITS") == "1":
        return "ADK_RETRY_NO_WAITS=1"
    return "adk_retry.testing.no_waits()"


async def run_demo(*, echo: Echo = print) -> dict[str, Any]:
    """Run the demo; returns the summary's numbers (the transcript goes through ``echo``)."""
    import litellm
    from google.adk.models.lite_llm import LiteLlm

    from adk_retry.agents.software_engineer import create_enhanced_software_engineer_agent
    from adk_retry.testing.turns import run_turn

    litellm.suppress_debug_info = True  # its "Give Feedback" banner is noise here
    script = demo_script()
    narrator = _Narrator(script, DEMO_POLICY.max_attempts, echo)
    policy = DEMO_POLICY.model_copy(update={"hooks": (*DEMO_POLICY.hooks, narrator)})
    faults = [answer.fault for answer in script]
    with tempfile.TemporaryDirectory(prefix="adk-retry-demo-") as workspace, FaultServer(*faults) as server:
        narrator.server = server
        _fill(Path(workspace))
        model = LiteLlm(model="openai/demo-model", api_base=server.url, api_key="sk-demo-not-a-real-key")
        agent = create_enhanced_software_engineer_agent(model, workspace=workspace, retry_policy=policy)
        echo(f"adk-retry demo: an ADK agent whose model is a fault server at {server.url}")
        echo(
            f"retry policy: up to {policy.max_attempts} attempts per model call, "
            f"backoff from {policy.base_delay:g}s doubling to at most {policy.max_delay:g}s, with jitter"
        )
        echo(f"the server's {len(script)} scripted answers, one per request it receives:")
        for number, answer in enumerate(script, 1):
            echo(f"  {number}. {answer.label}")
        echo("")
        echo(f"user: {_QUESTION}")
        started = time.monotonic()
        turn = await run_turn(agent, _QUESTION)
        elapsed = time.monotonic() - started
        for call in turn.function_calls:
            echo(f"tool call: {call.name}({json.dumps(call.args)})")
        echo(f"agent: {turn.text}")
        stats = agent.__dict__["_retry_handler"].stats
        summary = _summarise(stats, requests=len(server.requests), elapsed=elapsed)
    _print_summary(summary, echo)
    return summary


def _summarise(stats: Any, *, requests: int, elapsed: float) -> dict[str, Any]:
    return {
        "model calls": stats.calls,
        "attempts": stats.attempts,
        "retries": stats.retries,
        "upstream requests": requests,
        "backoff": round(stats.slept, 3),
        "slept": round(stats.slept, 3) if waits_enabled() else 0.0,
        "sleeping skipped": not waits_enabled(),
        "turn took": round(elapsed, 3),
    }


def _print_summary(summary: dict[str, Any], echo: Echo) -> None:
    hidden = summary["upstream requests"] - summary["attempts"]
    layers = "no retry layer below adk-retry resent anything" if hidden == 0 else f"{hidden} resent by lower layers"
    if summary["sleeping skipped"]:
        slept = f"0s: {summary['backoff']:.2f}s of backoff computed, sleeping skipped ({_why_no_sleep()})"
    else:
        slept = f"{summary['slept']:.2f}s of backoff between attempts"
    rows = [
        ("model calls", f"{summary['model calls']} (the agent asked its model {summary['model calls']} times)"),
        ("attempts", f"{summary['attempts']} (tries over all model calls, the first ones included)"),
        ("retries", f"{summary['retries']} (attempts after a failed one)"),
        ("upstream requests", f"{summary['upstream requests']} (received by the fault server; {layers})"),
        ("time slept", slept),
        ("turn took", f"{summary['turn took']:.2f}s"),
    ]
    echo("")
    echo("summary:")
    for name, text in rows:
        echo(f"  {name + ':':<19}{text}")


_LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")


def quiet_console(*, retry_log: bool = True) -> None:
    """Console logging for the demo, the examples and the notebook: short and in order.

    Everything goes to stdout at WARNING and above, with adk-retry's own retry
    lines at INFO (``retry_log``) so a reader sees each retry. litellm is told
    not to print its banners ("Give Feedback", "LiteLLM completion() model=")
    and its loggers stop at WARNING; they keep their own handler but stop
    propagating, which is what printed every litellm line twice. ADK's notice
    that it enabled an experimental feature by itself is hidden too. Setting
    ``LITELLM_LOG`` (litellm's own switch) leaves litellm's loggers alone.

    Without ``retry_log`` only adk-retry's errors (a call that gave up) show,
    for callers that narrate retries themselves, as the demo does.

    Example::

        from adk_retry.demo import quiet_console

        quiet_console()  # at the top of a script or the first cell of a notebook
    """
    import litellm

    # force: a notebook kernel or an earlier basicConfig may already have set a root handler.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s - %(message)s", stream=sys.stdout, force=True)
    logging.getLogger("adk_retry").setLevel(logging.INFO if retry_log else logging.ERROR)
    litellm.suppress_debug_info = True
    # ADK 2.3 turns on an experimental feature of its own for every function tool and says so
    # on stderr each run; nothing the reader chose, so not worth a line. Only that marker.
    warnings.filterwarnings("ignore", r"\[EXPERIMENTAL\] feature", UserWarning, r"google\.adk\.")
    if "LITELLM_LOG" not in os.environ:
        for name in _LITELLM_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
            logging.getLogger(name).propagate = False


def main(*, verbose: bool = False) -> None:
    """Entry point of ``adk-retry demo``; ``verbose`` adds adk-retry's own log lines."""
    # The narrator already says what the retry log would; --verbose shows the log as well.
    quiet_console(retry_log=verbose)
    asyncio.run(run_demo())
