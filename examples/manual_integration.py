"""The seed's manual integration, in the order that works.

1. ``create_retry_callbacks`` builds the handler and the two callbacks;
2. an ``Agent`` is built *with* the callbacks;
3. ``add_retry_capabilities_to_agent`` wraps the model of that same agent.

(The seed's text wrapped one agent and then built another; the retry would
then sit on an agent nobody runs.) Runs against the fault server unless
ADK_RETRY_MODEL names a real LiteLLM model.

    python examples/manual_integration.py
"""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from google.adk.agents import Agent

from adk_retry import add_retry_capabilities_to_agent, create_retry_callbacks
from adk_retry.demo import quiet_console
from adk_retry.testing import Fault
from adk_retry.testing.turns import example_model, run_turn


async def main() -> str:
    """Build the agent the seed's way, verify it, run one turn."""
    with example_model(Fault.empty_choices(), Fault.ok("Retried and answered.")) as model:
        retry_callbacks = create_retry_callbacks(
            agent_name="my_agent", max_retries=3, base_delay=0.2, max_delay=8.0, backoff_multiplier=2.0
        )
        agent = Agent(
            name="my_agent",
            model=model,
            instruction="Answer in one sentence.",
            before_model_callback=[retry_callbacks["before_model"]],
            after_model_callback=[retry_callbacks["after_model"]],
        )
        agent = add_retry_capabilities_to_agent(agent, retry_callbacks["retry_handler"])

        # The seed's verification commands.
        assert hasattr(agent, "_retry_handler")
        assert agent._retry_handler is not None
        assert "with_retry" in agent.model.generate_content_async.__name__
        assert hasattr(agent, "_original_generate_content_async")

        turn = await run_turn(agent, "Say something.")
        print(f"answer: {turn.text}")
        stats = agent._retry_handler.stats.as_dict()
        # The counters a reader checks; as_dict() also has the last error's full text, too long to print.
        print("stats:", {key: stats[key] for key in ("calls", "attempts", "retries", "slept", "errors")})
        return turn.text


if __name__ == "__main__":
    quiet_console()  # adk-retry's retry lines on stdout; litellm's banners and duplicate lines off
    asyncio.run(main())
