"""A retry storm as a dashboard sees it: adk-retry's OpenTelemetry metrics, exported.

Six turns of one agent against the fault server, which answers with a few
HTTP 503s and 429s (one with ``Retry-After``) and one outage long enough to
give up. The application owns OpenTelemetry: it sets a ``MeterProvider``
(here with an ``InMemoryMetricReader``; in production an OTLP or Prometheus
reader), and adk-retry's instruments report into it, with the same
``gen_ai.*`` attribute names ADK's own telemetry uses. At the end the script
collects once and prints what a dashboard would plot.

    python examples/metrics_export.py

Set ``ADK_RETRY_NO_WAITS=1`` to skip the backoff sleeps (they are still measured).
"""

from __future__ import annotations

import asyncio
import logging
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from google.adk.agents import LlmAgent
from google.adk.models.lite_llm import LiteLlm
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_AGENT_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
)

from adk_retry import RetryPlugin, RetryPolicy
from adk_retry.demo import quiet_console
from adk_retry.testing import Fault, FaultServer
from adk_retry.testing.turns import run_turn

# What the provider answers, request by request, over the six turns.
STORM = (
    *(Fault.http_error(503), Fault.ok("one")),
    Fault.ok("two"),
    *(Fault.http_error(429, retry_after=0.5), Fault.http_error(503), Fault.ok("three")),
    *Fault.http_error(503).times(4),  # the fourth turn: 4 attempts, then it gives up
    Fault.ok("five"),
    *(Fault.http_error(429), Fault.ok("six")),
)
TURNS = 6
# The same on every row here (one agent, one model): printed once, above the table.
COMMON = (GEN_AI_AGENT_NAME, GEN_AI_REQUEST_MODEL, GEN_AI_PROVIDER_NAME)


async def storm(reader: InMemoryMetricReader) -> int:
    """Run the turns under ``RetryPlugin``; returns the requests the provider saw."""
    policy = RetryPolicy(retry_on="transient", max_retries=3, base_delay=0.1, max_delay=0.5)
    with FaultServer(*STORM) as server:
        agent = LlmAgent(name="support", model=LiteLlm(model="openai/storm-model", api_base=server.url, api_key="sk"))
        plugin = RetryPlugin(policy)
        for _ in range(TURNS):
            try:
                await run_turn(agent, "Any news?", plugins=[plugin])
            except Exception as error:  # the turn that gave up: the caller gets the provider's error
                print(f"a turn failed: {type(error).__name__}")
        return len(server.requests)


def table(reader: InMemoryMetricReader) -> list[tuple[str, str, str]]:
    """One row per data point of the meter ``adk_retry``: instrument, attributes, value."""
    rows = []
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            if scope.scope.name != "adk_retry":
                continue
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    attributes = {k: v for k, v in dict(point.attributes).items() if k not in COMMON}
                    label = " ".join(f"{k}={v}" for k, v in sorted(attributes.items()))
                    if hasattr(point, "count"):  # a histogram: how many, and the total
                        value = f"count={point.count} sum={point.sum:.2f}{metric.unit}"
                    else:
                        value = str(point.value)
                    rows.append((metric.name, label, value))
    return sorted(rows)


def main() -> list[tuple[str, str, str]]:
    """Set up OpenTelemetry as an application would, run the storm, print the metrics."""
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    requests = asyncio.run(storm(reader))
    rows = table(reader)
    print(f"\n{TURNS} turns, {requests} requests to the provider. adk-retry's metrics, every row with")
    print(f"  {GEN_AI_AGENT_NAME}=support {GEN_AI_REQUEST_MODEL}=openai/storm-model {GEN_AI_PROVIDER_NAME}=openai")
    width = max(len(name) for name, _, _ in rows)
    for name, label, value in rows:
        print(f"  {name:<{width}}  {value:<22} {label}")
    return rows


if __name__ == "__main__":
    quiet_console(retry_log=False)  # the table is the point here, not the retry lines
    logging.getLogger("google_adk").setLevel(logging.CRITICAL)  # ADK's traceback of the turn that gave up
    main()
