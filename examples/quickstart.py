"""The shortest path: one agent, one line of retry.

Runs against adk-retry's fault server (two empty answers, then a real one).
With ADK_RETRY_MODEL (a LiteLLM model name) and that provider's key in the
environment, it talks to the real provider instead.

    python examples/quickstart.py
"""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from google.adk.agents import Agent

from adk_retry import RetryHandler, add_retry_capabilities_to_agent
from adk_retry.demo import quiet_console
from adk_retry.testing import Fault
from adk_retry.testing.turns import example_model, run_turn


async def main() -> str:
    """Run one turn and return the answer."""
    with example_model(Fault.empty_choices(), Fault.empty_choices(), Fault.ok("Hi!")) as model:
        agent = Agent(name="quickstart", model=model, instruction="Greet the user.")

        add_retry_capabilities_to_agent(agent, RetryHandler(agent_name="quickstart"))  # <- the one line

        turn = await run_turn(agent, "hello")
        print(f"answer: {turn.text}  (retries: {agent._retry_handler.stats.retries})")
        return turn.text


if __name__ == "__main__":
    quiet_console()  # adk-retry's retry lines on stdout; litellm's banners and duplicate lines off
    asyncio.run(main())
