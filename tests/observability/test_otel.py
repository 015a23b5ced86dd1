"""Aggregate views and the OpenTelemetry metrics and span events (adk_retry.observability._otel).

The OpenTelemetry tests pass their own SDK providers to ``enable_metrics``
(the global providers can be set only once per process); one test sets the
global providers after import, in a subprocess of its own.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
import uuid
import weakref
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.adk.agents import Agent, LlmAgent
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_AGENT_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_REQUEST_RESEND_COUNT

import adk_retry.engine._loop
from adk_retry import (
    CircuitOpenError,
    RetryHandler,
    RetryPolicy,
    add_retry_capabilities_to_agent,
)
from adk_retry.core._breaker import CircuitBreaker
from adk_retry.core._budget import RetryBudget
from adk_retry.core._events import RetryEvent, global_hooks
from adk_retry.guards._store import MemoryStore
from adk_retry.observability import Metrics, enable_metrics, give_up_reason, merge, stats_by_agent, stats_by_model
from adk_retry.observability import _otel as retry_metrics
from adk_retry.observability._stats import RetryStats
from adk_retry.testing import Fault, no_waits
from adk_retry.testing.turns import run_turn
from tests import conftest
from tests.conftest import API_KEY
from tests.fakes import scripted

MODEL = "openai/fault-model"

# The attribute names, from the semantic conventions (adk-retry's own ones under adk_retry.).
KEYS = {
    "agent": GEN_AI_AGENT_NAME,
    "model": GEN_AI_REQUEST_MODEL,
    "provider": GEN_AI_PROVIDER_NAME,
    "error_type": ERROR_TYPE,
    "resend_count": HTTP_REQUEST_RESEND_COUNT,
    "error_class": "adk_retry.error_class",
    "reason": "adk_retry.reason",
    "outcome": "adk_retry.outcome",
    "state": "adk_retry.breaker.state",
    "to_model": "adk_retry.to_model",
}


def keyed(**attributes: Any) -> dict[str, Any]:
    """``attributes`` under their telemetry names: ``keyed(agent="a")`` -> ``{"gen_ai.agent.name": "a"}``."""
    return {KEYS[key]: value for key, value in attributes.items()}


def unique(prefix: str = "metrics") -> str:
    """An agent name no other test uses: handlers of earlier tests may still be alive."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def retrying_agent(model: Any, name: str, **policy: Any) -> LlmAgent:
    agent: LlmAgent = conftest.retrying_agent(model, name, retry_on="transient", **policy)
    return agent


@dataclass
class Otel:
    """SDK providers wired to in-memory exporters, and adk-retry's metrics on them."""

    reader: InMemoryMetricReader
    spans: InMemorySpanExporter
    tracer_provider: TracerProvider
    telemetry: Metrics

    def collect(self) -> dict[str, list[Any]]:
        """Data points by instrument name, from the meter ``adk_retry``."""
        data = self.reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                if scope.scope.name != "adk_retry":
                    continue
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found

    def dump(self) -> str:
        """Every collected metric and finished span, as text."""
        data = self.reader.get_metrics_data()
        spans = [span.to_json() for span in self.spans.get_finished_spans()]
        return (data.to_json() if data is not None else "") + "\n".join(spans)


def value(points: dict[str, list[Any]], name: str, **attributes: Any) -> Any:
    """The value of the one data point of ``name`` whose attributes include ``attributes``; 0 if none."""
    wanted = keyed(**attributes).items()
    matching = [p for p in points.get(name, []) if wanted <= dict(p.attributes).items()]
    assert len(matching) <= 1, matching
    return matching[0].value if matching else 0


def histogram(points: dict[str, list[Any]], name: str, **attributes: Any) -> list[Any]:
    wanted = keyed(**attributes).items()
    return [p for p in points.get(name, []) if wanted <= dict(p.attributes).items()]


@pytest.fixture
def otel() -> Iterator[Otel]:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = enable_metrics(meter_provider=meter_provider, tracer_provider=tracer_provider)
    try:
        yield Otel(reader, spans, tracer_provider, telemetry)
    finally:
        telemetry.disable()
        meter_provider.shutdown()
        tracer_provider.shutdown()


@pytest.fixture
def no_global_hooks() -> Iterator[None]:
    """No hook at all in ``global_hooks`` (nor enabled metrics) for the test; restored after."""
    saved_hooks, saved_active = list(global_hooks), list(retry_metrics._active)
    global_hooks.clear()
    retry_metrics._active.clear()
    try:
        yield
    finally:
        global_hooks[:] = saved_hooks
        retry_metrics._active[:] = saved_active


# -- aggregate views -----------------------------------------------------------------------------


def test_merge_adds_everything_and_keeps_the_latest_error():
    first_error, second_error = ValueError("one"), KeyError("two")
    a = RetryStats(
        calls=2,
        attempts=3,
        retries=1,
        successes=1,
        failures=1,
        slept=1.5,
        budget_denials=1,
        breaker_rejections=2,
        breaker_transitions=Counter({"closed->open": 1}),
        errors=Counter(ValueError=2),
        last_error=first_error,
    )
    b = RetryStats(
        calls=1,
        attempts=4,
        retries=3,
        failures=1,
        slept=0.25,
        breaker_transitions=Counter({"closed->open": 1, "half_open->closed": 1}),
        errors=Counter(ValueError=1, KeyError=3),
        last_error=second_error,
    )
    total = merge(a, b)
    assert (total.calls, total.attempts, total.retries, total.successes, total.failures) == (3, 7, 4, 1, 2)
    assert total.slept == 1.75
    assert (total.budget_denials, total.breaker_rejections) == (1, 2)
    assert total.errors == Counter(ValueError=3, KeyError=3)
    assert total.breaker_transitions == Counter({"closed->open": 2, "half_open->closed": 1})
    assert total.last_error is second_error
    assert merge(a, RetryStats()).last_error is first_error
    # Pure: neither argument changed, no counter shared.
    assert a.calls == 2
    assert a.errors == Counter(ValueError=2)
    assert b.errors == Counter(ValueError=1, KeyError=3)
    assert total.errors is not a.errors
    assert total.breaker_transitions is not b.breaker_transitions


def test_stats_by_agent_sums_handlers_sharing_a_name():
    name, other = unique(), unique()
    first, second, third = RetryHandler(agent_name=name), RetryHandler(agent_name=name), RetryHandler(agent_name=other)
    first.stats.calls, first.stats.attempts, first.stats.errors["OSError"] = 2, 3, 1
    second.stats.calls, second.stats.attempts, second.stats.errors["OSError"] = 1, 1, 2
    third.stats.calls = 7
    by_agent = stats_by_agent()
    assert by_agent[name].calls == 3
    assert by_agent[name].attempts == 4
    assert by_agent[name].errors == Counter(OSError=3)
    assert by_agent[other].calls == 7
    by_agent[name].calls = 100  # a copy: the handlers are untouched
    assert first.stats.calls == 2
    assert stats_by_agent()[name].calls == 3


def test_stats_by_model_sums_wrappers_of_the_same_model_name():
    from google.adk.models.lite_llm import LiteLlm

    model_name = f"openai/{unique('model')}"
    first = LiteLlm(model=model_name, api_key=API_KEY)
    second = LiteLlm(model=model_name, api_key=API_KEY)
    agents = [
        add_retry_capabilities_to_agent(Agent(name=unique(), model=model), RetryHandler()) for model in (first, second)
    ]
    wrappers = [model.generate_content_async.adk_retry for model in (first, second)]
    wrappers[0].stats.calls, wrappers[0].stats.retries = 2, 1
    wrappers[1].stats.calls, wrappers[1].stats.retries = 3, 4
    by_model = stats_by_model()
    assert by_model[model_name].calls == 5
    assert by_model[model_name].retries == 5
    assert len(agents) == 2


# -- OpenTelemetry, end to end -------------------------------------------------------------------


@pytest.mark.e2e
async def test_a_retry_is_measured_and_traced(server, make_model, otel):
    name = unique()
    agent = retrying_agent(make_model(), name)
    server.push(Fault.http_error(503), Fault.ok("x"))
    tracer = otel.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("turn") as turn, no_waits():
        assert (await run_turn(agent)).text == "x"

    points = otel.collect()
    assert value(points, "adk_retry.attempts", agent=name) == 2
    assert value(points, "adk_retry.retries", agent=name) == 1
    assert value(points, "adk_retry.calls", agent=name, outcome="success") == 1
    assert value(points, "adk_retry.calls", agent=name, outcome="failure") == 0
    [delay] = histogram(points, "adk_retry.backoff_delay", agent=name)
    assert delay.count == 1
    assert dict(delay.attributes) == keyed(
        agent=name,
        model=MODEL,
        provider="openai",
        error_type="ServiceUnavailableError",
        error_class="server_error",
        reason="backoff",
    )
    assert 0.0 < delay.sum <= 1.2  # the first backoff: about 1 s, +-20 %
    assert not histogram(points, "adk_retry.give_ups", agent=name)

    # ADK's own spans are no-ops here (no global TracerProvider), so the retry
    # is a short span of its own under the span around the turn.
    spans = otel.spans.get_finished_spans()
    [retry_span] = [span for span in spans if span.name == "adk_retry.retry"]
    assert retry_span.parent is not None
    assert retry_span.parent.span_id == turn.get_span_context().span_id
    [event] = retry_span.events
    assert event.name == "adk_retry.retry"
    assert dict(event.attributes or {}) == {
        **keyed(
            agent=name,
            model=MODEL,
            provider="openai",
            error_type="ServiceUnavailableError",
            error_class="server_error",
            reason="backoff",
            resend_count=0,
        ),
        "adk_retry.attempt": 1,
        "adk_retry.delay": pytest.approx(delay.sum),
    }
    # The attempt that answered shows too, with its resend count; no error of its own.
    [success_span] = [span for span in spans if span.name == "adk_retry.success"]
    assert dict(success_span.attributes or {}) == {
        **keyed(agent=name, model=MODEL, provider="openai", resend_count=1),
        "adk_retry.attempt": 2,
    }
    text = otel.dump()
    assert API_KEY not in text
    assert "fault-injected" not in text  # no exception message, only type names


@pytest.mark.e2e
async def test_giving_up_is_counted_with_its_error_class(server, make_model, otel):
    import litellm

    name = unique()
    agent = retrying_agent(make_model(), name)
    server.push(*Fault.http_error(503).times(4))
    with no_waits(), pytest.raises(litellm.ServiceUnavailableError):
        await run_turn(agent)

    points = otel.collect()
    assert value(points, "adk_retry.attempts", agent=name) == 4
    assert value(points, "adk_retry.retries", agent=name) == 3
    assert value(points, "adk_retry.calls", agent=name, outcome="failure") == 1
    exhausted = {"model": MODEL, "error_class": "server_error", "reason": "attempts_exhausted"}
    assert value(points, "adk_retry.give_ups", agent=name, **exhausted) == 1
    [delays] = histogram(points, "adk_retry.backoff_delay", agent=name)
    assert delays.count == 3
    assert API_KEY not in otel.dump()


@pytest.mark.e2e
async def test_breaker_transitions_and_rejections_are_counted(server, make_model, otel):
    now = [1_000_000.0]
    name = unique()
    policy = RetryPolicy(
        retry_on="transient", breaker=CircuitBreaker(failure_threshold=1, cooldown=30.0), store=MemoryStore()
    )
    handler = RetryHandler(policy, agent_name=name, wall_clock=lambda: now[0])
    agent = add_retry_capabilities_to_agent(Agent(name=name, model=make_model()), handler)

    server.push(Fault.http_error(503))
    with no_waits():
        with pytest.raises(Exception, match="503"):
            await run_turn(agent)  # the failure opens the circuit: no retry
        with pytest.raises(CircuitOpenError):
            await run_turn(agent)  # refused without a request
        now[0] += 31.0
        server.push(Fault.ok("back"))
        assert (await run_turn(agent)).text == "back"  # the probe closes it
    assert len(server.requests) == 2

    points = otel.collect()
    assert value(points, "adk_retry.breaker_transitions", model=MODEL, state="open") == 1
    assert value(points, "adk_retry.breaker_transitions", model=MODEL, state="closed") == 1
    assert value(points, "adk_retry.give_ups", agent=name, reason="circuit_open") == 1
    assert value(points, "adk_retry.calls", agent=name, outcome="circuit_open") == 1
    assert value(points, "adk_retry.calls", agent=name, outcome="success") == 1
    assert value(points, "adk_retry.calls", agent=name, outcome="failure") == 1


@pytest.mark.e2e
async def test_budget_denials_are_counted(server, make_model, otel):
    name = unique()
    agent = retrying_agent(make_model(), name, budget=RetryBudget(max_tokens=1.0), store=MemoryStore())
    server.push(*Fault.http_error(503).times(2))
    with no_waits(), pytest.raises(Exception, match="503"):
        await run_turn(agent)
    points = otel.collect()
    assert value(points, "adk_retry.budget_denials", agent=name, model=MODEL, error_class="server_error") == 1
    assert value(points, "adk_retry.give_ups", agent=name, reason="budget_exhausted") == 1
    assert value(points, "adk_retry.retries", agent=name) == 1


def test_fallbacks_and_hedges_are_counted_by_model_and_target(otel):
    name = unique()
    error = ConnectionResetError("down")
    otel.telemetry(
        RetryEvent(
            "fallback",
            agent=name,
            model="openai/a",
            attempt=3,
            error=error,
            error_class="connection",
            to_model="openai/b",
        )
    )
    otel.telemetry(RetryEvent("hedge", agent=name, model="openai/a", attempt=1, to_model="openai/a"))
    otel.telemetry(RetryEvent("hedge", agent=name, model="openai/a", attempt=1, to_model="openai/a"))
    points = otel.collect()
    assert (
        value(
            points,
            "adk_retry.fallbacks",
            agent=name,
            model="openai/a",
            to_model="openai/b",
            error_class="connection",
            error_type="ConnectionResetError",
        )
        == 1
    )
    assert value(points, "adk_retry.hedges", agent=name, model="openai/a", to_model="openai/a") == 2


async def test_rate_limit_waits_and_refusals_are_observed_by_agent(otel):
    from adk_retry import RateLimit, RateLimitedError

    now = [1000.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    name = unique()
    policy = RetryPolicy.transient(rate_limit=RateLimit(rpm=60, max_wait=0.5), store=MemoryStore())
    handler = RetryHandler(policy, agent_name=name, sleep=sleep, clock=lambda: now[0], wall_clock=lambda: now[0])

    async def ok() -> str:
        return "ok"

    assert await handler(ok) == "ok"  # at once
    with pytest.raises(RateLimitedError):
        await handler(ok)  # would wait 1 s: refused
    now[0] += 0.5
    assert await handler(ok) == "ok"  # waits the other 0.5 s
    points = otel.collect()
    assert value(points, "adk_retry.rate_limit.wait", agent=name) == pytest.approx(handler.stats.rate_limit_waited)
    assert handler.stats.rate_limit_waited == pytest.approx(0.5)
    assert value(points, "adk_retry.rate_limit.rejections", agent=name) == handler.stats.rate_limit_rejections >= 1


async def test_the_span_event_goes_on_the_current_recording_span(otel):
    name = unique()
    handler = RetryHandler(RetryPolicy(retry_on="transient", jitter=0), agent_name=name)
    model_call, _ = scripted(ConnectionResetError(f"reset, key={API_KEY}"), "fine")

    tracer = otel.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("turn"), no_waits():
        assert await handler(model_call) == "fine"
    [turn] = otel.spans.get_finished_spans()  # no fallback span: the events went on the current one
    [event, success] = turn.events
    assert (event.name, success.name) == ("adk_retry.retry", "adk_retry.success")
    assert dict(event.attributes or {}) == {
        **keyed(
            agent=name,
            model="unknown",
            provider="gcp.gemini",  # no model name: ADK's own fallback
            error_type="ConnectionResetError",
            error_class="connection",
            reason="backoff",
            resend_count=0,
        ),
        "adk_retry.attempt": 1,
        "adk_retry.delay": 1.0,
    }
    assert dict(success.attributes or {})["adk_retry.attempt"] == 2
    assert API_KEY not in otel.dump()


async def test_no_span_and_no_error_outside_any_trace(otel):
    handler = RetryHandler(RetryPolicy(retry_on="transient"), agent_name=unique())
    model_call, _ = scripted(TimeoutError("slow"), "ok")

    with no_waits():
        assert await handler(model_call) == "ok"
    assert otel.spans.get_finished_spans() == ()


# -- cost, lifecycle ----------------------------------------------------------------------------


async def test_success_path_builds_no_event_when_no_hook_is_set(no_global_hooks, monkeypatch):
    def no_event(*args: Any, **kwargs: Any) -> RetryEvent:
        raise AssertionError("an event was built on the success path")

    monkeypatch.setattr(adk_retry.engine._loop, "RetryEvent", no_event)
    handler = RetryHandler(RetryPolicy(retry_on="transient"), agent_name=unique())

    async def model_call() -> str:
        return "ok"

    assert await handler(model_call) == "ok"
    assert handler.stats.attempts == 1


@pytest.mark.e2e
async def test_success_path_sends_nothing_to_the_metrics_hook(server, make_model, otel, monkeypatch):
    seen: list[RetryEvent] = []
    monkeypatch.setattr(Metrics, "__call__", lambda self, event: seen.append(event))
    spy: list[RetryEvent] = []
    global_hooks.append(spy.append)
    try:
        name = unique()
        agent = retrying_agent(make_model(), name)
        server.push(Fault.ok("first time"))
        with no_waits():
            await run_turn(agent)
    finally:
        global_hooks.remove(spy.append)
    assert seen == []
    assert spy == []
    points = otel.collect()
    # Only the observable counters have something: read from the handler's own counts at collection.
    assert value(points, "adk_retry.attempts", agent=name) == 1
    assert not histogram(points, "adk_retry.backoff_delay", agent=name)


def test_enable_then_disable_leaves_no_hook(no_global_hooks):
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    telemetry = enable_metrics(meter_provider=provider)
    assert enable_metrics(meter_provider=provider) is telemetry  # idempotent
    assert global_hooks.count(telemetry) == 1
    name = unique()
    handler = RetryHandler(agent_name=name)
    handler.stats.attempts = 3
    assert any(p.attributes.get(GEN_AI_AGENT_NAME) == name for p in _points(reader).get("adk_retry.attempts", []))

    telemetry.disable()
    telemetry.disable()  # twice is harmless
    assert global_hooks == []
    assert not telemetry.enabled
    assert not any(p.attributes.get(GEN_AI_AGENT_NAME) == name for p in _points(reader).get("adk_retry.attempts", []))
    telemetry(RetryEvent("give_up", agent=name, model="m", attempt=1, reason="attempts exhausted"))
    assert not _points(reader).get("adk_retry.give_ups")

    # Enabled again on the same provider: the same object and instruments, which report again.
    assert enable_metrics(meter_provider=provider) is telemetry
    assert telemetry.enabled
    assert [p.value for p in _points(reader)["adk_retry.attempts"] if p.attributes.get(GEN_AI_AGENT_NAME) == name] == [
        3
    ]
    telemetry.disable()
    assert global_hooks == []
    provider.shutdown()


def test_a_provider_is_not_kept_alive_by_its_metrics(no_global_hooks):
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False)
    telemetry = enable_metrics(meter_provider=provider)
    assert telemetry.meter_provider is provider
    telemetry.disable()
    gone = weakref.ref(provider)
    del provider
    gc.collect()
    assert gone() is None
    assert telemetry.meter_provider is None


def test_observed_counts_survive_their_handler(otel):
    name = unique()
    handler = RetryHandler(agent_name=name)
    handler.stats.attempts, handler.stats.retries = 5, 2
    assert value(otel.collect(), "adk_retry.attempts", agent=name) == 5
    del handler
    gc.collect()
    assert name not in stats_by_agent()  # the live view forgets it...
    points = otel.collect()  # ...the counters do not go down
    assert value(points, "adk_retry.attempts", agent=name) == 5
    assert value(points, "adk_retry.retries", agent=name) == 2


def test_give_up_reasons_are_few():
    assert give_up_reason("attempts exhausted") == "attempts_exhausted"
    assert give_up_reason("the matching rule's retries exhausted") == "rule_exhausted"
    assert give_up_reason("server asked to wait 300s, over max_hint_delay") == "hint_too_long"
    assert give_up_reason("deadline: 0.10s left, retry needs 2.00s") == "deadline"
    assert give_up_reason("circuit open") == "circuit_open"
    assert give_up_reason("retry budget exhausted") == "budget_exhausted"
    assert give_up_reason(None) == "other"


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


# -- the global providers, set after adk_retry was imported ------------------------------------


def test_the_first_handler_enables_metrics_unless_opted_out_and_importing_enables_nothing():
    package_root = str(Path(retry_metrics.__file__).resolve().parents[2])
    script = (
        "import adk_retry, adk_retry.observability._otel as m, adk_retry.core._events as e;"
        "print(len(e.global_hooks));"
        "adk_retry.RetryHandler();"
        "print(sum(isinstance(h, m.Metrics) for h in e.global_hooks), len(e.global_hooks))"
    )
    for setting, expected in ((None, "0 1 2"), ("0", "0 0 0"), ("off", "0 0 0"), ("1", "0 1 2")):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        env.pop("ADK_RETRY_OTEL", None)
        if setting is not None:
            env["ADK_RETRY_OTEL"] = setting
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
        assert done.stdout.split()[-3:] == expected.split(), (setting, done.stdout, done.stderr)


_AFTER_IMPORT = textwrap.dedent(
    """
    import asyncio, json, os
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import adk_retry
    from google.adk.agents import Agent
    from google.adk.models.lite_llm import LiteLlm
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from adk_retry.testing import Fault, FaultServer, no_waits
    from adk_retry.testing.turns import run_turn

    # Only now does the application configure OpenTelemetry.
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(tracer_provider)

    async def main():
        with FaultServer() as server:
            callbacks = adk_retry.create_retry_callbacks("late", retry_on="transient")
            model = LiteLlm(model="openai/late-model", api_base=server.url, api_key="sk-late-SECRET", max_retries=0)
            agent = adk_retry.add_retry_capabilities_to_agent(
                Agent(name="late", model=model), callbacks["retry_handler"])
            server.push(Fault.http_error(429), Fault.ok("x"))
            with trace.get_tracer("app").start_as_current_span("turn"), no_waits():
                await run_turn(agent)

    asyncio.run(main())
    found = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    if point.attributes.get("gen_ai.agent.name") == "late":
                        found[metric.name] = getattr(point, "value", None) or getattr(point, "count", None)
    spans = exporter.get_finished_spans()
    events = [(span.name, dict(event.attributes)) for span in spans for event in span.events
              if event.name == "adk_retry.retry"]
    trace_ids = {span.context.trace_id for span in spans}
    print(json.dumps({"metrics": found, "events": events, "traces": len(trace_ids),
                      "dump": "".join(span.to_json() for span in spans)}))
    """
)


@pytest.mark.e2e
def test_global_providers_set_after_import_are_used():
    package_root = str(Path(retry_metrics.__file__).resolve().parents[2])
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    env.pop("ADK_RETRY_OTEL", None)
    done = subprocess.run(
        [sys.executable, "-c", _AFTER_IMPORT], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["metrics"]["adk_retry.attempts"] == 2
    assert report["metrics"]["adk_retry.retries"] == 1
    assert report["metrics"]["adk_retry.backoff_delay"] == 1  # the histogram's count
    # ADK's spans record now, so the event lands on the innermost one (the model
    # call), in the trace of the span around the turn; no fallback span.
    [(span_name, attributes)] = report["events"]
    assert span_name != "adk_retry.retry"
    assert attributes["adk_retry.error_class"] == "rate_limit"
    assert attributes[GEN_AI_REQUEST_MODEL] == "openai/late-model"
    assert report["traces"] == 1
    assert "sk-late-SECRET" not in report["dump"]
