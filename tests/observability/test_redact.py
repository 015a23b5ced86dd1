"""Redaction of API keys and auth headers, in strings, log records and the handler's logs."""

from __future__ import annotations

import logging
import sys

import pytest

from adk_retry.core._policy import RetryPolicy
from adk_retry.engine._loop import RetryHandler
from adk_retry.observability._redact import REDACTED, RedactingFilter, redact

SECRET_KEY = "sk-test-SECRET0123456789"
SECRET_TOKEN = "abcdef123456"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Incorrect API key provided: sk-abcdef1234567890", "sk-abcdef1234567890"),
        ("key sk-proj-Ab12Cd34Ef56Gh78 refused", "sk-proj-Ab12Cd34Ef56Gh78"),
        ("anthropic sk-ant-api03-Zx9Yw8Vu7Ts6 invalid", "sk-ant-api03-Zx9Yw8Vu7Ts6"),
        ("google key AIzaSyA1234567890abcdefghijklmnop rejected", "AIzaSyA1234567890abcdefghijklmnop"),
        ("sent Bearer abcdefgh12345678", "abcdefgh12345678"),
        ("Authorization: Bearer abcdef123456", "abcdef123456"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("authorization=tok3n-value", "tok3n-value"),
        ("url?api_key=hunter2&model=x", "hunter2"),
        ("api-key: azure0123456789", "azure0123456789"),
        ("x-api-key: anthropicsecret99", "anthropicsecret99"),
        ('{"api_key": "jsonsecret42"}', "jsonsecret42"),
        ("x-goog-api-key: goog-secret-1", "goog-secret-1"),
    ],
)
def test_secret_is_replaced(text: str, secret: str) -> None:
    redacted = redact(text)
    assert secret not in redacted
    assert REDACTED in redacted


def test_replacement_keeps_surrounding_text() -> None:
    assert redact("Incorrect API key provided: sk-proj-abc123def456") == "Incorrect API key provided: [REDACTED]"
    assert redact("Authorization: Bearer abcdefgh12345") == "Authorization: Bearer [REDACTED]"
    assert redact("url?api_key=hunter2&model=x") == "url?api_key=[REDACTED]&model=x"


@pytest.mark.parametrize(
    "text",
    [
        "No message in response",
        "HTTP 503",
        "max_tokens=5",
        "Rate limit reached for tokens per min",
        "litellm.InternalServerError: Invalid response object",
        "task-queue overloaded; disk-full",
        "",
    ],
)
def test_ordinary_text_is_untouched(text: str) -> None:
    assert redact(text) == text


def test_python_dict_repr_header_is_redacted() -> None:
    text = "headers={'api-key': '0123456789abcdef0123456789abcdef', 'x-api-key': 'anthropicsecret99'}"
    redacted = redact(text)
    assert "0123456789abcdef0123456789abcdef" not in redacted
    assert "anthropicsecret99" not in redacted


# --- RedactingFilter -----------------------------------------------------------


def make_record(msg: object, args: object = None, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("test", logging.ERROR, __file__, 1, msg, args, exc_info)  # type: ignore[arg-type]


def test_filter_keeps_the_record() -> None:
    assert RedactingFilter().filter(make_record("plain")) is True


def test_filter_scrubs_msg() -> None:
    record = make_record(f"refused {SECRET_KEY}")
    RedactingFilter().filter(record)
    assert record.getMessage() == "refused [REDACTED]"


def test_filter_scrubs_exception_used_as_msg() -> None:
    record = make_record(RuntimeError(f"refused {SECRET_KEY}"))
    RedactingFilter().filter(record)
    assert SECRET_KEY not in record.getMessage()


def test_filter_scrubs_tuple_args() -> None:
    record = make_record("%s failed: %s (%d)", ("call", f"key {SECRET_KEY}", 401))
    RedactingFilter().filter(record)
    assert record.args == ("call", "key [REDACTED]", 401)
    assert record.getMessage() == "call failed: key [REDACTED] (401)"


def test_filter_scrubs_exception_in_tuple_args() -> None:
    record = make_record("error: %s", (ValueError(f"bad key {SECRET_KEY}"),))
    RedactingFilter().filter(record)
    assert record.getMessage() == "error: bad key [REDACTED]"


def test_filter_scrubs_mapping_args() -> None:
    record = make_record("%(agent)s: %(error)s", ({"agent": "a", "error": f"Authorization: Bearer {SECRET_TOKEN}"},))
    RedactingFilter().filter(record)
    assert record.args == {"agent": "a", "error": "Authorization: Bearer [REDACTED]"}
    assert SECRET_TOKEN not in record.getMessage()


def test_filter_scrubs_container_in_tuple_args() -> None:
    record = make_record("request %s to %s", ({"api_key": SECRET_KEY}, "openai"))
    RedactingFilter().filter(record)
    assert SECRET_KEY not in record.getMessage()


def test_filter_scrubs_extra_string_fields() -> None:
    record = make_record("hello")
    record.detail = f"x-api-key: {SECRET_TOKEN}"
    record.count = 3
    RedactingFilter().filter(record)
    assert record.detail == "x-api-key: [REDACTED]"
    assert record.count == 3


def test_filter_scrubs_exc_info_traceback() -> None:
    try:
        raise RuntimeError(f"Incorrect API key provided: {SECRET_KEY}")
    except RuntimeError:
        record = make_record("call failed", exc_info=sys.exc_info())
    RedactingFilter().filter(record)
    assert record.exc_info is None
    assert record.exc_text is not None
    assert "RuntimeError: Incorrect API key provided: [REDACTED]" in record.exc_text
    assert "Traceback" in record.exc_text
    formatted = logging.Formatter().format(record)
    assert SECRET_KEY not in formatted
    assert "call failed" in formatted


def test_filter_scrubs_existing_exc_text() -> None:
    record = make_record("x")
    record.exc_text = f"Traceback ...\nValueError: {SECRET_KEY}"
    RedactingFilter().filter(record)
    assert record.exc_text == "Traceback ...\nValueError: [REDACTED]"


def test_adk_retry_logger_has_the_filter() -> None:
    assert any(isinstance(f, RedactingFilter) for f in logging.getLogger("adk_retry").filters)


# --- end to end through the handler ----------------------------------------------------


async def test_handler_logs_never_contain_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="adk_retry")
    message = f"Incorrect API key provided: {SECRET_KEY}. Request headers: Authorization: Bearer {SECRET_TOKEN}"

    async def model_call() -> str:
        raise PermissionError(message)

    async def no_sleep(seconds: float) -> None:
        return None

    handler = RetryHandler(RetryPolicy(retry_on="all", max_retries=2), sleep=no_sleep, random=lambda: 0.5)
    with pytest.raises(PermissionError):
        await handler(model_call)

    records = [r for r in caplog.records if r.name.startswith("adk_retry")]
    assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING, logging.ERROR]
    for record in records:
        texts = [record.getMessage(), repr(record.args), record.exc_text or ""]
        texts += [repr(value) for value in vars(record).values()]
        for text in texts:
            assert SECRET_KEY not in text
            assert SECRET_TOKEN not in text
    assert "Incorrect API key provided: [REDACTED]" in records[0].getMessage()
    assert "Authorization: Bearer [REDACTED]" in records[-1].getMessage()
    # The handler does not alter the exception it re-raises.
    assert handler.stats.last_error is not None
    assert SECRET_KEY in str(handler.stats.last_error)
    assert SECRET_KEY not in str(handler.stats.as_dict())


def test_every_library_logger_redacts_its_own_records(caplog: pytest.LogCaptureFixture) -> None:
    from adk_retry.observability._log import get_logger

    caplog.set_level(logging.INFO, logger="adk_retry")
    for name in ("ollama", "redis"):
        get_logger(name).warning("server at %s said %s", "http://user:pw@host:11434", RuntimeError(SECRET_KEY))
    rendered = " ".join(r.getMessage() for r in caplog.records)
    assert SECRET_KEY not in rendered
    assert "user:pw" not in rendered


def test_an_object_argument_is_redacted_through_its_repr() -> None:
    import functools

    hook = functools.partial(print, api_key=SECRET_KEY)
    record = make_record("retry hook %r failed", (hook,))
    RedactingFilter().filter(record)
    assert SECRET_KEY not in record.getMessage()


def test_describe_redacts_before_it_cuts() -> None:
    from adk_retry.observability._log import describe

    key = "AIzaSyD-0123456789abcdefghijklmnopqrstu"
    text = describe(RuntimeError("x" * 280 + " key=" + key))
    assert "AIzaSy" not in text
    assert len(text) <= 300


def test_describe_survives_a_broken_str() -> None:
    from adk_retry.observability._log import describe

    class Broken(Exception):
        def __str__(self) -> str:
            raise AttributeError("no")

    assert describe(Broken()) == "Broken"


# --- what a provider's error text really carries ------------------------------------------

HEX_KEY = "0123456789abcdef0123456789abcdef"

# (text, the secret in it). One or more per pattern of litellm's own SecretRedactionFilter
# (litellm/litellm_core_utils/secret_redaction.py), then the shapes issue 9 found leaking.
LITELLM_SAMPLES = [
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----", "MIIEowIBAAKCAQEA7"),
    ("token ya29.a0AfH6SMBx-Yz_12", "a0AfH6SMBx-Yz_12"),
    ("client_secret s3cr3tValue99", "s3cr3tValue99"),
    ("azure_password hunter2hunter2", "hunter2hunter2"),
    ("id AKIAIOSFODNN7EXAMPLE and ASIAIOSFODNN7EXAMPLE", "IOSFODNN7EXAMPLE"),
    ("Bearer abcdefghij0123456789", "abcdefghij0123456789"),
    ("Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("sk-abcdefghijklmnop1234", "abcdefghijklmnop1234"),
    ("GET /v1?api_key=abcd1234efgh&x=1", "abcd1234efgh"),
    ("GET /v1?access_token=tok123456&x=1", "tok123456"),
    ("GET /v1?db_password=pw123456", "pw123456"),
    ("{'api_key': 'abcdefgh12345678'}", "abcdefgh12345678"),
    ("apikey=abcdefgh12345678", "abcdefgh12345678"),
    ("headers {'x-api-key': 'xk123'}", "xk123"),
    ("api-key: azk1234", "azk1234"),
    ("x-ak-abcdefghijklmnopqrstuvwx", "abcdefghijklmnopqrstuvwx"),
    ("AIzaSyA1234567890abcdefghijklmnopqrstuvw", "SyA1234567890abcdefghijklmnopqrstuvw"),
    ("https://host/v1?key=AIzaNotReallyAKey123", "NotReallyAKey123"),
    ("password: hunter2", "hunter2"),
    ("db_passwd=hunter22", "hunter22"),
    ("secret_key='sk_live_5678'", "sk_live_5678"),
    ("my_secret=abc987", "abc987"),
    ("postgres://admin:pa55word@db.internal:5432/app", "pa55word"),
    ("token dapi0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"),
    ("litellm.openai_key=oai-456789", "oai-456789"),
    ("private_key: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN\n-----END PRIVATE KEY-----", "MIIEvQIBADAN"),
    ("private_key=raw-key-material", "raw-key-material"),
    ("'master_key': 'mk-0987654321'", "mk-0987654321"),
    ("xai_key=xk-0987654321", "xk-0987654321"),
    ("database_url=postgres://u@h/d", "postgres://u@h/d"),
    ("connection_string: Server=tcp;Password=pw", "Server=tcp"),
    ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI"),
    ("aws_session_token=FwoGZXIvYXdzEBY", "FwoGZXIvYXdzEBY"),
    ("aws_access_key_id=AKIDEXAMPLE1", "AKIDEXAMPLE1"),
    ("signing_key=sg-1234", "sg-1234"),
    ("auth_token: at-1234", "at-1234"),
    ("refresh_token=rt-1234", "rt-1234"),
    ("slack_webhook_url=https://hooks.slack.com/services/T0/B0/XX", "hooks.slack.com"),
    ("huggingface_token=hf_abcdefghij", "hf_abcdefghij"),
    ("jwt_secret=jw-1234", "jw-1234"),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "eyJzdWIiOiIx"),
    ("https://acct.blob.core.windows.net/c?sv=2021&sig=abc%2Bdef%3D", "abc%2Bdef"),
    ('{"type": "service_account", "project_id": "p", "client_email": "a@p.iam"}', "a@p.iam"),
]

ISSUE_9_SAMPLES = [
    (f"Invalid API key: {HEX_KEY}", HEX_KEY),
    (f"Incorrect API key provided: {HEX_KEY}.", HEX_KEY),
    (f'{{\\"api-key\\": \\"{HEX_KEY}\\"}}', HEX_KEY),
    (f'{{\\"api_key\\": \\"{HEX_KEY}\\", \\"model\\": \\"gpt-4o\\"}}', HEX_KEY),
    ('{\\"Authorization\\": \\"Bearer abc.def-0123456789\\"}', "abc.def-0123456789"),
    ('{\\\\\\"x-api-key\\\\\\": \\\\\\"doubly-escaped-99\\\\\\"}', "doubly-escaped-99"),
    ('password: "several words long"', "several words"),
    ("-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkq (cut here", "MIIEvQIBADANBgkq"),
]


@pytest.mark.parametrize(("text", "secret"), LITELLM_SAMPLES + ISSUE_9_SAMPLES)
def test_every_secret_shape_is_redacted(text: str, secret: str) -> None:
    redacted = redact(text)
    assert secret not in redacted, redacted
    assert REDACTED in redacted
    assert redact(redacted) == redacted  # running it twice (describe, then the filter) changes nothing


def test_the_samples_are_what_litellms_own_filter_catches() -> None:
    """Keeps the table honest: each litellm sample is one litellm's own patterns redact too."""
    secret_redaction = pytest.importorskip("litellm.litellm_core_utils.secret_redaction")
    for text, secret in LITELLM_SAMPLES:
        assert secret not in secret_redaction.python_redact_string(text), text


def test_escaped_json_keeps_its_shape() -> None:
    text = f'body: {{\\"api-key\\": \\"{HEX_KEY}\\", \\"model\\": \\"gpt-4o\\"}}'
    assert redact(text) == 'body: {\\"api-key\\": \\"[REDACTED]\\", \\"model\\": \\"gpt-4o\\"}'
    assert redact(f"Invalid API key: {HEX_KEY}") == "Invalid API key: [REDACTED]"


@pytest.mark.parametrize(
    "text",
    [
        "[agent] Model request failed (attempt 2/4): HTTP 503. Retrying in 1.5s...",
        "Model request succeeded on attempt 3",
        "openai/gpt-4o",
        "gemini-2.5-flash-preview-05-20",
        "anthropic/claude-3-5-sonnet-20241022",
        "request_id: req_0123456789abcdef0123456789abcdef",
        "x-request-id: 7f3e2a1b-9c8d-4e5f-a6b7-c8d9e0f1a2b3",
        "completion_tokens=12, prompt_tokens: 34, total_tokens=46",
        "Circuit for openai/gpt-4o: closed -> open",
        "429 RESOURCE_EXHAUSTED: Resource exhausted. Please try again later.",
        "api_base=http://127.0.0.1:8080/v1",
        "task-1234567890abcdefgh",
        "Invalid API key. Please check your key.",
        '{"error": {"code": 401, "message": "invalid key", "type": "auth"}}',
    ],
)
def test_log_text_without_secrets_stays(text: str) -> None:
    assert redact(text) == text


def test_filter_scrubs_escaped_json_and_keyless_keys_in_records(caplog: pytest.LogCaptureFixture) -> None:
    from adk_retry.observability._log import get_logger

    caplog.set_level(logging.WARNING, logger="adk_retry")
    body = f'{{\\"api-key\\": \\"{HEX_KEY}\\", \\"Authorization\\": \\"Bearer tok-{HEX_KEY}\\"}}'
    get_logger().error("provider said %s; sent %s", f"Invalid API key: {HEX_KEY}", body)
    get_logger("redis").warning(RuntimeError(f"Invalid API key: {HEX_KEY}"))
    rendered = [record.getMessage() for record in caplog.records]
    assert len(rendered) == 2
    assert all(HEX_KEY not in text for text in rendered)


async def test_handler_records_never_carry_a_keyless_or_escaped_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="adk_retry")
    message = f'Invalid API key: {HEX_KEY} (request body {{\\"api-key\\": \\"{HEX_KEY}\\"}})'

    async def model_call() -> str:
        raise PermissionError(message)

    async def no_sleep(seconds: float) -> None:
        return None

    handler = RetryHandler(RetryPolicy(retry_on="all", max_retries=1), sleep=no_sleep)
    with pytest.raises(PermissionError) as caught:
        await handler(model_call)
    assert str(caught.value) == message  # the caller's exception is untouched
    records = [r for r in caplog.records if r.name.startswith("adk_retry")]
    assert [r.levelno for r in records] == [logging.WARNING, logging.ERROR]
    for record in records:
        assert HEX_KEY not in record.getMessage()
        assert all(HEX_KEY not in repr(value) for value in vars(record).values())


# --- describe(): what a retry line says of the error ----------------------------------------

GEMINI_429 = {
    "error": {
        "code": 429,
        "message": "Resource exhausted. Please try again later. Please refer to "
        "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}],
    }
}


def test_describe_a_gemini_429_says_status_and_message() -> None:
    """ADK's Gemini raises its own _ResourceExhaustedError, whose text starts with advice."""
    from google.adk.models.google_llm import _ResourceExhaustedError
    from google.genai.errors import ClientError

    from adk_retry.observability._log import describe

    raw = ClientError(429, GEMINI_429)
    wrapped = _ResourceExhaustedError(raw)
    assert str(wrapped).strip().startswith("On how to mitigate this issue")  # what was logged before
    expected = (
        "429 RESOURCE_EXHAUSTED: Resource exhausted. Please try again later. Please refer to "
        "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."
    )
    assert describe(wrapped) == expected
    assert describe(raw) == expected


def test_describe_an_api_error_redacts_and_bounds_its_message() -> None:
    from google.genai.errors import ClientError, ServerError

    from adk_retry.observability._log import describe

    leaked = ClientError(400, {"error": {"code": 400, "message": f"Invalid API key: {HEX_KEY}", "status": "INVALID"}})
    assert describe(leaked) == "400 INVALID: Invalid API key: [REDACTED]"
    assert len(describe(ServerError(503, {"error": {"message": "x" * 1000, "status": "UNAVAILABLE"}}))) == 300
    # No message (a websocket close): the error's own text, as before.
    assert describe(ServerError(1011, "closed")).startswith("1011")


async def test_a_gemini_429_retry_line_names_the_status(caplog: pytest.LogCaptureFixture) -> None:
    from google.adk.models.google_llm import _ResourceExhaustedError
    from google.genai.errors import ClientError

    caplog.set_level(logging.WARNING, logger="adk_retry")
    errors = iter([_ResourceExhaustedError(ClientError(429, GEMINI_429))])

    async def model_call() -> str:
        for error in errors:
            raise error
        return "ok"

    async def no_sleep(seconds: float) -> None:
        return None

    handler = RetryHandler(RetryPolicy(retry_on="all", max_retries=1), sleep=no_sleep)
    assert await handler(model_call) == "ok"
    [line] = [r.getMessage() for r in caplog.records if r.name == "adk_retry"]
    assert "429 RESOURCE_EXHAUSTED: Resource exhausted. Please try again later." in line
    assert "On how to mitigate" not in line
