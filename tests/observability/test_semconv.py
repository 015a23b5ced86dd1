"""The names and values of adk-retry's telemetry attributes (adk_retry.observability._semconv)."""

from __future__ import annotations

import pytest
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_AGENT_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GenAiProviderNameValues,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_REQUEST_RESEND_COUNT

from adk_retry.core._events import RetryEvent
from adk_retry.observability import _semconv as names
from adk_retry.observability._otel import SPAN_EVENTS, span_attributes
from tests.fakes import scripted


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("openai/gpt-4o-mini", GenAiProviderNameValues.OPENAI.value),
        ("OpenAI/gpt-4o-mini", "openai"),
        ("anthropic/claude-sonnet-4", GenAiProviderNameValues.ANTHROPIC.value),
        ("ollama_chat/qwen3:8b", "ollama_chat"),  # a LiteLLM prefix with no well-known value: as is
        ("gemini/gemini-2.5-flash", GenAiProviderNameValues.GCP_GEMINI.value),
        ("vertex_ai/gemini-2.5-pro", GenAiProviderNameValues.GCP_VERTEX_AI.value),
        ("azure/my-deployment", GenAiProviderNameValues.AZURE_AI_OPENAI.value),
        ("gemini-2.5-flash", GenAiProviderNameValues.GCP_GEMINI.value),
        ("projects/p/locations/l/publishers/google/models/gemini-2.5-flash", "gcp.gemini"),
        ("models/gemini-2.5-pro", "gcp.gemini"),
        ("claude-sonnet-4", "anthropic"),
        (None, "gcp.gemini"),  # no model name: ADK's own fallback
        ("", "gcp.gemini"),
    ],
)
def test_the_provider_is_named_as_adk_names_it(model, provider):
    assert names.provider_name(model) == provider


def test_vertex_ai_by_the_environment_as_adk_decides(monkeypatch):
    monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
    monkeypatch.setenv("GOOGLE_GENAI_USE_ENTERPRISE", "true")
    assert names.provider_name("gemini-2.5-flash") == GenAiProviderNameValues.GCP_VERTEX_AI.value
    monkeypatch.setenv("GOOGLE_GENAI_USE_ENTERPRISE", "0")
    assert names.provider_name("gemini-2.5-flash") == GenAiProviderNameValues.GCP_GEMINI.value


def test_the_model_class_names_the_provider_when_the_id_does_not():
    names.note_model_class("house-model-7", ("AnthropicLlm", "BaseLlm", "BaseModel", "object"))
    names.note_model_class("gpt-4o-house", ("LiteLlm", "BaseLlm"))  # litellm's default provider
    names.note_model_class("tuned-7", ("ApigeeLlm", "Gemini", "BaseLlm"))
    names.note_model_class("mystery-7", ("MyModel", "BaseLlm"))
    assert names.provider_name("house-model-7") == "anthropic"
    assert names.provider_name("gpt-4o-house") == "openai"
    assert names.provider_name("tuned-7") == "gcp.gemini"
    assert names.provider_name("mystery-7") == "gcp.gemini"  # nothing known: ADK's fallback
    # A prefix in the id wins over the class.
    names.note_model_class("openai/x", ("AnthropicLlm",))
    assert names.provider_name("openai/x") == "openai"


def test_error_type_is_adks_never_the_message():
    class Classified(Exception):
        error_type = "MODEL_RETURNED_NO_CONTENT"

    assert names.error_type(TimeoutError("key=sk-SECRET")) == "TimeoutError"
    assert names.error_type(Classified("x")) == "MODEL_RETURNED_NO_CONTENT"
    assert names.error_type(None) == "_OTHER"


def test_error_type_of_a_google_genai_error_is_its_status_code():
    from google.genai.errors import ClientError

    error = ClientError(429, {"error": {"code": 429, "message": "Quota.", "status": "RESOURCE_EXHAUSTED"}})
    assert names.error_type(error) == "429"


def test_the_standard_names_are_the_conventions_own():
    assert (names.GEN_AI_AGENT_NAME, names.GEN_AI_REQUEST_MODEL, names.GEN_AI_PROVIDER_NAME) == (
        GEN_AI_AGENT_NAME,
        GEN_AI_REQUEST_MODEL,
        GEN_AI_PROVIDER_NAME,
    )
    assert (names.ERROR_TYPE, names.HTTP_REQUEST_RESEND_COUNT) == (ERROR_TYPE, HTTP_REQUEST_RESEND_COUNT)
    own = (names.ATTEMPT, names.DELAY, names.ERROR_CLASS, names.REASON, names.OUTCOME, names.BREAKER_STATE)
    assert all(name.startswith("adk_retry.") for name in own)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            RetryEvent(
                "retry", agent="a", model="openai/m", attempt=2, delay=1.5, error=OSError("s"), error_class="connection"
            ),
            {
                GEN_AI_AGENT_NAME: "a",
                GEN_AI_REQUEST_MODEL: "openai/m",
                GEN_AI_PROVIDER_NAME: "openai",
                ERROR_TYPE: "OSError",
                HTTP_REQUEST_RESEND_COUNT: 1,
                "adk_retry.attempt": 2,
                "adk_retry.delay": 1.5,
                "adk_retry.error_class": "connection",
                "adk_retry.reason": "backoff",
            },
        ),
        (
            RetryEvent("give_up", agent="a", model=None, attempt=4, error=OSError(), reason="attempts exhausted"),
            {
                GEN_AI_AGENT_NAME: "a",
                GEN_AI_REQUEST_MODEL: "unknown",
                GEN_AI_PROVIDER_NAME: "gcp.gemini",
                ERROR_TYPE: "OSError",
                HTTP_REQUEST_RESEND_COUNT: 3,
                "adk_retry.attempt": 4,
                "adk_retry.error_class": "other",
                "adk_retry.reason": "attempts_exhausted",
            },
        ),
        (
            RetryEvent("success_after_retry", agent="a", model="openai/m", attempt=3),
            {
                GEN_AI_AGENT_NAME: "a",
                GEN_AI_REQUEST_MODEL: "openai/m",
                GEN_AI_PROVIDER_NAME: "openai",
                HTTP_REQUEST_RESEND_COUNT: 2,
                "adk_retry.attempt": 3,
            },
        ),
    ],
    ids=["retry", "give_up", "success"],
)
def test_span_event_attributes(event, expected):
    assert dict(span_attributes(event)) == expected
    assert event.kind in SPAN_EVENTS


# -- log records that join traces -----------------------------------------------------------------


async def test_log_records_carry_the_model_the_call_ids_and_the_trace(caplog):
    import logging

    from opentelemetry.sdk.trace import TracerProvider

    from adk_retry import RetryHandler, RetryPolicy
    from adk_retry.adapter._call_state import CallState
    from adk_retry.engine._loop import run_attempts
    from adk_retry.testing import no_waits

    class Context:  # what ADK's CallbackContext offers
        invocation_id = "e-123"

        class session:
            id = "s-456"

    handler = RetryHandler(RetryPolicy(retry_on="transient"), agent_name="logged")
    state = CallState("logged", handler, context=Context())
    answers = iter([ConnectionResetError("reset"), "ok"])

    async def attempt():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        yield answer

    tracer = TracerProvider().get_tracer("test")
    with (
        caplog.at_level(logging.INFO, logger="adk_retry"),
        no_waits(),
        tracer.start_as_current_span("model call") as span,
    ):
        call = handler.begin("logged", "openai/m", None, state)
        assert [r async for r in run_attempts(call, attempt, (), hold_all=True)] == ["ok"]
    context = span.get_span_context()
    [retrying, succeeded] = [r for r in caplog.records if r.name == "adk_retry"]
    for record in (retrying, succeeded):
        assert record.model == "openai/m"
        assert (record.invocation_id, record.session_id) == ("e-123", "s-456")
        assert record.trace_id == format(context.trace_id, "032x")
        assert record.span_id == format(context.span_id, "016x")
    assert state.model == "openai/m"  # for the after-model callback's own line


async def test_no_trace_ids_outside_a_span_and_no_record_on_a_first_success(caplog):
    import logging

    from adk_retry import RetryHandler, RetryPolicy

    handler = RetryHandler(RetryPolicy(retry_on="transient", jitter=0), agent_name="plain", sleep=_no_sleep)
    model_call, _ = scripted(TimeoutError("slow"), "ok", "ok again")

    with caplog.at_level(logging.INFO, logger="adk_retry"):
        assert await handler(model_call) == "ok"
        count = len(caplog.records)
        assert await handler(model_call) == "ok again"
    assert len(caplog.records) == count  # nothing failed: nothing written
    record = caplog.records[0]
    assert record.model is None
    assert record.agent == "plain"
    assert not hasattr(record, "trace_id")
    assert not hasattr(record, "invocation_id")


async def _no_sleep(seconds: float) -> None:
    return None
