"""The plugin on a multi-agent app: a coordinator, a sub-agent and an AgentTool.

No agent is touched: ``RetryPlugin`` gives every one of them retry. Runs
against the fault server (the scripted model calls the research tool,
transfers to the writer, and fails with empty answers along the way) unless
ADK_RETRY_MODEL names a real LiteLLM model.

    python examples/plugin_app.py
"""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from google.adk.agents import LlmAgent
from google.adk.models.lite_llm import LiteLlm
from google.adk.tools.agent_tool import AgentTool

from adk_retry import RetryPlugin, RetryPolicy
from adk_retry.demo import quiet_console
from adk_retry.testing import Fault
from adk_retry.testing.turns import example_model, run_turn

SCRIPT = (
    Fault.tool_call("researcher", {"request": "What is adk-retry?"}),
    Fault.empty_choices(),  # the researcher, inside the AgentTool
    Fault.ok("A retry layer for ADK model calls."),
    Fault.empty_choices(),  # the coordinator, after the tool
    Fault.tool_call("transfer_to_agent", {"agent_name": "writer"}),
    Fault.empty_choices(),  # the writer
    Fault.ok("adk-retry keeps ADK agents answering when their models fail."),
)


def build_app(model: LiteLlm) -> LlmAgent:
    """A coordinator with a writer sub-agent (inheriting its model) and a researcher tool."""
    researcher = LlmAgent(name="researcher", model=model, instruction="Answer research questions briefly.")
    writer = LlmAgent(name="writer", instruction="Write the final answer in one sentence.")
    return LlmAgent(
        name="coordinator",
        model=model,
        instruction="Use the researcher tool, then transfer to the writer.",
        sub_agents=[writer],
        tools=[AgentTool(agent=researcher)],
    )


async def main() -> str:
    """Run one turn of the app under the plugin and print per-agent statistics."""
    with example_model(*SCRIPT) as model:
        plugin = RetryPlugin(RetryPolicy(base_delay=0.2))
        turn = await run_turn(build_app(model), "Explain adk-retry.", plugins=[plugin])
        print(f"answer: {turn.text}")
        for agent_name, stats in sorted(plugin.stats.items()):
            print(f"{agent_name}: calls={stats.calls} retries={stats.retries}")
        return turn.text


if __name__ == "__main__":
    quiet_console()  # adk-retry's retry lines on stdout; litellm's banners and duplicate lines off
    asyncio.run(main())
