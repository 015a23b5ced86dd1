"""The shortest path: one agent, one line of retry.

Runs against adk-retry's fault server (two empty answers, then a real one).
With ADK_RETRY_MODEL (a LiteLLM model name) and that provider's key in the
environment, it talks to the real provider instead.

    python examples/quickstart.py
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from google.adk.agents import Agent
from google.adk.models.lite_llm import LiteLlm

from adk_retry import RetryHandler, add_retry_capabilities_to_agent
from adk_retry.testing import Fault, FaultServer
from adk_retry.testing.turns import run_turn


async def main() -> str:
    """Run one turn and return the answer."""
    real_model = os.environ.get("ADK_RETRY_MODEL")
    with contextlib.ExitStack() as stack:
        if real_model:
            model = LiteLlm(model=real_model)
        else:
            server = stack.enter_context(FaultServer(Fault.empty_choices(), Fault.empty_choices(), Fault.ok("Hi!")))
            model = LiteLlm(model="openai/quickstart", api_base=server.url, api_key="sk-fake")
        agent = Agent(name="quickstart", model=model, instruction="Greet the user.")

        add_retry_capabilities_to_agent(agent, RetryHandler(agent_name="quickstart"))  # <- the one line

        turn = await run_turn(agent, "hello")
        print(f"answer: {turn.text}  (retries: {agent._retry_handler.stats.retries})")
        return turn.text


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s - %(message)s", stream=sys.stdout)
    asyncio.run(main())
