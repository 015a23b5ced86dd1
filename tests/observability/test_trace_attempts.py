"""Each attempt of a retried call, in ADK's own trace; log records that join it.

OpenTelemetry lets a process set its global ``TracerProvider`` once, and ADK's
spans record only through the global one, so every test here runs a script
in a subprocess of its own: Runner + ``RetryPlugin`` (or
``create_retry_callbacks``) + real ``LiteLlm`` against the fault server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_AGENT_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_REQUEST_RESEND_COUNT

import adk_retry

pytestmark = pytest.mark.e2e

ROOT = Path(adk_retry.__file__).resolve().parents[1]

_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, logging, os, sys
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import adk_retry
    from google.adk.agents import Agent
    from google.adk.models.lite_llm import LiteLlm
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from adk_retry.testing import Fault, FaultServer, no_waits
    from adk_retry.testing.turns import run_turn

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    records = []
    class Keep(logging.Handler):
        def emit(self, record):
            records.append({key: getattr(record, key, None) for key in (
                "levelname", "agent", "model", "attempt", "invocation_id", "session_id", "trace_id", "span_id")})
    logging.getLogger("adk_retry").addHandler(Keep())
    logging.getLogger("adk_retry").setLevel(logging.INFO)

    async def main(how, faults):
        with FaultServer() as server:
            model = LiteLlm(model="openai/traced-model", api_base=server.url, api_key="sk-trace-SECRET", max_retries=0)
            if faults == "storm":
                server.push(Fault.http_error(503), Fault.http_error(429), Fault.ok("x"))
            elif faults == "give_up":
                server.push(*Fault.http_error(503).times(2))
            else:
                server.push(Fault.ok("x"))
            policy = {"retry_on": "transient", "max_retries": 2 if faults != "give_up" else 1}
            if how == "plugin":
                agent, plugins = Agent(name="traced", model=model), [adk_retry.RetryPlugin(policy)]
            else:
                callbacks = adk_retry.create_retry_callbacks("traced", **policy)
                agent = adk_retry.add_retry_capabilities_to_agent(
                    Agent(name="traced", model=model, before_model_callback=[callbacks["before_model"]],
                          after_model_callback=[callbacks["after_model"]]),
                    callbacks["retry_handler"])
                plugins = []
            with no_waits():
                try:
                    await run_turn(agent, plugins=plugins)
                except Exception as error:
                    print("raised", type(error).__name__, file=sys.stderr)

    def report():
        return [{
            "name": span.name,
            "id": format(span.context.span_id, "016x"),
            "trace": format(span.context.trace_id, "032x"),
            "parent": format(span.parent.span_id, "016x") if span.parent else None,
            "attributes": dict(span.attributes or {}),
            "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
        } for span in exporter.get_finished_spans()]

    reports = {}
    for scenario in sys.argv[1:]:
        how, faults, schema = scenario.split(":")
        # ADK reads its schema version at each call, so one process can run both.
        os.environ.pop("ADK_TELEMETRY_SCHEMA_VERSION_OPT_IN", None)
        if schema:
            os.environ["ADK_TELEMETRY_SCHEMA_VERSION_OPT_IN"] = schema
        exporter.clear()
        records.clear()
        asyncio.run(main(how, faults))
        reports[scenario] = {"spans": report(), "records": list(records)}
    print(json.dumps(reports))
    """
)


SCENARIOS = (
    "plugin:storm:",
    "plugin:storm:1",
    "plugin:give_up:",
    "plugin:ok:",
    "callbacks:storm:",
)


@pytest.fixture(scope="module")
def reports() -> dict[str, Any]:
    """Every scenario ``how:faults:adk_schema``, run in one subprocess (ADK's import is the slow part)."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("ADK_RETRY_OTEL", None)
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *SCENARIOS],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sk-trace-SECRET" not in done.stdout
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def ours(span: dict[str, Any]) -> list[dict[str, Any]]:
    return [event for event in span["events"] if event["name"].startswith("adk_retry.")]


def model_span(report: dict[str, Any]) -> dict[str, Any]:
    """ADK's model-call span: the one span that carries adk-retry's events."""
    [span] = [span for span in report["spans"] if ours(span)]
    assert span["name"] == "generate_content openai/traced-model", span["name"]
    return span


@pytest.mark.parametrize("schema", [None, "1"], ids=["adk-default-schema", "adk-legacy-schema"])
def test_each_attempt_shows_under_adks_model_call_span(reports, schema):
    report = reports[f"plugin:storm:{schema or ''}"]
    spans = {span["id"]: span for span in report["spans"]}
    span = model_span(report)
    # Under ADK's legacy schema (and on ADK before 2.13) the model span sits in ADK's
    # call_llm span; under 2.13's default (no call_llm) in the agent's span. Either way
    # ADK's, in one trace.
    parent = spans[span["parent"]]
    assert parent["name"] in (("call_llm",) if schema == "1" else ("call_llm", "invoke_agent traced"))
    assert len({s["trace"] for s in report["spans"]}) == 1
    assert not any(s["name"].startswith("adk_retry.") for s in report["spans"])  # no fallback span

    first, second, answered = ours(span)
    assert [first["name"], second["name"], answered["name"]] == [
        "adk_retry.retry",
        "adk_retry.retry",
        "adk_retry.success",
    ]
    for event, attempt in zip((first, second, answered), (1, 2, 3), strict=True):
        attributes = event["attributes"]
        assert attributes[GEN_AI_AGENT_NAME] == "traced"
        assert attributes[GEN_AI_REQUEST_MODEL] == "openai/traced-model"
        assert attributes[GEN_AI_PROVIDER_NAME] == "openai"
        assert attributes["adk_retry.attempt"] == attempt
        assert attributes[HTTP_REQUEST_RESEND_COUNT] == attempt - 1
    # The failed attempts: which error, and the backoff after each (recorded, not slept).
    assert first["attributes"][ERROR_TYPE] == "ServiceUnavailableError"
    assert first["attributes"]["adk_retry.error_class"] == "server_error"
    assert second["attributes"][ERROR_TYPE] == "RateLimitError"
    assert second["attributes"]["adk_retry.error_class"] == "rate_limit"
    assert 0.0 < first["attributes"]["adk_retry.delay"] < second["attributes"]["adk_retry.delay"]
    assert ERROR_TYPE not in answered["attributes"]
    # Our names match the ones ADK puts on its own span.
    assert span["attributes"].get(GEN_AI_AGENT_NAME, "traced") == "traced"
    assert span["attributes"].get(GEN_AI_REQUEST_MODEL, "openai/traced-model") == "openai/traced-model"


def test_giving_up_shows_the_last_attempt_and_why(reports):
    report = reports["plugin:give_up:"]
    retry, give_up = ours(model_span(report))
    assert retry["name"] == "adk_retry.retry"
    assert give_up["name"] == "adk_retry.give_up"
    assert give_up["attributes"][ERROR_TYPE] == "ServiceUnavailableError"
    assert give_up["attributes"]["adk_retry.reason"] == "attempts_exhausted"
    assert give_up["attributes"][HTTP_REQUEST_RESEND_COUNT] == 1


def test_a_first_attempt_success_adds_no_event(reports):
    report = reports["plugin:ok:"]
    assert not any(ours(span) for span in report["spans"])
    assert report["records"] == []


@pytest.mark.parametrize("how", ["plugin", "callbacks"])
def test_log_records_join_the_trace_and_the_adk_invocation(reports, how):
    report = reports[f"{how}:storm:"]
    span = model_span(report)
    records = report["records"]
    retries = [r for r in records if r["levelname"] == "WARNING"]
    [success] = [r for r in records if r["levelname"] == "INFO" and r["attempt"] == 3]
    assert len(retries) == 2
    for record in (*retries, success):
        assert record["agent"] == "traced"
        assert record["model"] == "openai/traced-model"
        assert record["invocation_id"]
        assert record["invocation_id"].startswith("e-")
        assert record["session_id"]
        assert record["trace_id"] == span["trace"]
        assert len(record["span_id"]) == 16
    # The retry lines are written during the model call: they name ADK's model-call span.
    assert {r["span_id"] for r in retries} == {span["id"]}
    assert len({r["invocation_id"] for r in records if r["invocation_id"]}) == 1
