"""The demo: the software-engineer agent, retried through scripted faults.

Everything is real except the provider: an ADK ``Runner`` drives the agent,
whose ``LiteLlm`` model talks through litellm over HTTP to adk-retry's fault
server on 127.0.0.1. The scripted model answers with nothing twice, asks for
a real ``list_files`` tool call, answers with nothing once more, and then
answers from the tool's result. No key, no network, a few seconds.
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
from pathlib import Path
from typing import Any

from adk_retry.core._policy import RetryPolicy
from adk_retry.testing import Fault, FaultServer

__all__ = ["DEMO_POLICY", "run_demo"]

DEMO_POLICY = RetryPolicy(base_delay=0.5, max_delay=2.0)
"""The seed's policy with shorter delays, so the demo takes seconds."""

_FILES = {
    "README.md": "# calculator\nA tiny calculator.\n",
    "calculator.py": "def add(a, b):\n    return a + b\n",
    "test_calculator.py": "from calculator import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
}


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


def demo_script() -> list[Fault]:
    """The faults, in the order the agent's model calls meet them."""
    return [
        Fault.empty_choices(),  # first model call: no message, retried
        Fault.null_message(),  # again: a null message, retried
        Fault.tool_call("list_files", {"path": "."}),
        Fault.empty_choices(),  # second model call, after the tool ran: retried
        Fault.reply(_answer_from_tool_result),
    ]


async def run_demo(*, echo: Any = print) -> dict[str, Any]:
    """Run the demo; returns a summary (also printed through ``echo``)."""
    import litellm
    from google.adk.models.lite_llm import LiteLlm

    from adk_retry.agents.software_engineer import create_enhanced_software_engineer_agent
    from adk_retry.testing.turns import run_turn

    litellm.suppress_debug_info = True  # its "Give Feedback" banner is noise here
    with tempfile.TemporaryDirectory(prefix="adk-retry-demo-") as workspace, FaultServer(*demo_script()) as server:
        _fill(Path(workspace))
        model = LiteLlm(model="openai/demo-model", api_base=server.url, api_key="sk-demo-not-a-real-key")
        agent = create_enhanced_software_engineer_agent(model, workspace=workspace, retry_policy=DEMO_POLICY)
        echo(f"fault server: {server.url} ({server.pending} scripted answers)")
        echo("user: What files are in the workspace?")
        started = time.monotonic()
        turn = await run_turn(agent, "What files are in the workspace?")
        elapsed = time.monotonic() - started
        for call in turn.function_calls:
            echo(f"tool call: {call.name}({json.dumps(call.args)})")
        echo(f"agent: {turn.text}")
        stats = agent.__dict__["_retry_handler"].stats
        summary = {
            "model calls": stats.calls,
            "attempts": stats.attempts,
            "retries": stats.retries,
            "upstream requests": len(server.requests),
            "time slept": f"{stats.slept:.2f}s",
            "turn took": f"{elapsed:.2f}s",
        }
        echo("summary: " + ", ".join(f"{key}={value}" for key, value in summary.items()))
        return summary


def main() -> None:
    """Entry point of ``adk-retry demo``: log retries to the console and run the demo."""
    # One stream for the log and the transcript, so they interleave in order.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s - %(message)s", stream=sys.stdout)
    logging.getLogger("adk_retry").setLevel(logging.INFO)
    asyncio.run(run_demo())
