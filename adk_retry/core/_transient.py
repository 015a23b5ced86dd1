"""Which failures are transient: the ``retry_on="transient"`` preset.

A failure is transient when the same request may well succeed if sent again
a little later: rate limits, server errors, timeouts, dropped connections,
an empty answer, a local model server out of memory. Everything else (a bad
request, a wrong key, a missing model, a context window exceeded, a bug in
the caller's code, cancellation) fails the same way every time and is never
retried.

Failures are classified by exception *type* first, then by HTTP status code;
text is read only where no type exists (the seed's missing-message rule and
an Ollama out-of-memory answer). Types from litellm, openai, httpx, aiohttp,
google-genai and google-adk are recognised by module and class name along the
MRO, as :func:`adk_retry.core._empty.has_type_named` does, so this module imports
none of those libraries. httpx and httpx2 (openai 3.x's transport, same class
names) are one family: their exceptions classify alike. The first class of the MRO that has a rule decides:
``ContextWindowExceededError`` is a ``BadRequestError`` and is never retried,
``APITimeoutError`` is an ``APIConnectionError`` and counts as a timeout.

:func:`error_class` names the kind of failure, one of :data:`ERROR_CLASSES`;
:func:`is_transient` is ``error_class(exc) is not None``.

Example:
    >>> error_class(TimeoutError("read timed out"))
    'timeout'
    >>> is_transient(KeyError("model"))
    False
"""

from __future__ import annotations

from typing import Final

from adk_retry.core._empty import safe_attr, safe_text, seed_default

__all__ = [
    "CONNECTION",
    "EMPTY_RESPONSE",
    "ERROR_CLASSES",
    "MALFORMED_FUNCTION_CALL",
    "OUT_OF_MEMORY",
    "RATE_LIMIT",
    "RETRIABLE_STATUS_CODES",
    "SERVER_ERROR",
    "TIMEOUT",
    "error_class",
    "fallback_class",
    "FALLBACK_CLASSES",
    "FALLBACK_ONLY_CLASSES",
    "CONTEXT_WINDOW_EXCEEDED",
    "CONTENT_POLICY",
    "CIRCUIT_OPEN",
    "is_out_of_memory",
    "is_transient",
    "status_code",
]

RATE_LIMIT: Final = "rate_limit"
"""The provider refused the call for now: HTTP 429, ``RateLimitError``, ``RESOURCE_EXHAUSTED``."""
SERVER_ERROR: Final = "server_error"
"""The provider failed: HTTP 500, 502, 503 (and 529), ``InternalServerError``, ``ServiceUnavailableError``."""
TIMEOUT: Final = "timeout"
"""No answer in time: HTTP 408 and 504, ``Timeout``, ``APITimeoutError``, ``TimeoutError``."""
CONNECTION: Final = "connection"
"""The connection failed or dropped: ``APIConnectionError``, ``httpx.ConnectError``, ``ConnectionResetError``."""
EMPTY_RESPONSE: Final = "empty_response"
"""The model answered nothing: the seed's missing-message rule, see :func:`adk_retry.core._empty.seed_default`."""
OUT_OF_MEMORY: Final = "out_of_memory"
"""A local model server (Ollama, vLLM, ...) could not load or run the model for lack of memory."""
MALFORMED_FUNCTION_CALL: Final = "malformed_function_call"
"""Tool-call arguments that did not parse: :class:`~adk_retry.core._errors.MalformedFunctionCallError`.

Only ever raised under ``RetryPolicy(retry_malformed_function_calls=True)``,
so an ``ErrorRule(match="malformed_function_call")`` can give it its own limit."""

ERROR_CLASSES: Final = (
    RATE_LIMIT,
    SERVER_ERROR,
    TIMEOUT,
    CONNECTION,
    EMPTY_RESPONSE,
    OUT_OF_MEMORY,
    MALFORMED_FUNCTION_CALL,
)
"""Every value :func:`error_class` returns besides ``None``.

Example:
    >>> "rate_limit" in ERROR_CLASSES
    True
"""

CONTEXT_WINDOW_EXCEEDED: Final = "context_window_exceeded"
"""The request does not fit the model: litellm's ``ContextWindowExceededError``.

Never transient (the same model fails the same way), but a fallback model with
a larger window may answer: ``RetryPolicy(fallback_on=("context_window_exceeded",))``."""
CONTENT_POLICY: Final = "content_policy"
"""The provider refused the content: litellm's ``ContentPolicyViolationError``, openai's
``ContentFilterFinishReasonError``. Never transient; another provider may answer."""
CIRCUIT_OPEN: Final = "circuit_open"
"""The model's circuit is open: :class:`~adk_retry.core._errors.CircuitOpenError`, raised before any attempt."""

FALLBACK_ONLY_CLASSES: Final = (CONTEXT_WINDOW_EXCEEDED, CONTENT_POLICY, CIRCUIT_OPEN)
"""Classes :func:`fallback_class` names that are never retried on the same model."""

FALLBACK_CLASSES: Final = (*ERROR_CLASSES, *FALLBACK_ONLY_CLASSES)
"""What ``RetryPolicy(fallback_on=...)`` accepts: every transient class plus :data:`FALLBACK_ONLY_CLASSES`."""

_FALLBACK_RULES: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "ContextWindowExceededError": (("litellm", CONTEXT_WINDOW_EXCEEDED),),
    "ContentPolicyViolationError": (("litellm", CONTENT_POLICY),),
    "ContentFilterFinishReasonError": (("openai", CONTENT_POLICY),),
    "CircuitOpenError": (("adk_retry", CIRCUIT_OPEN),),
}

RETRIABLE_STATUS_CODES: Final[dict[int, str]] = {
    408: TIMEOUT,
    429: RATE_LIMIT,
    500: SERVER_ERROR,
    502: SERVER_ERROR,
    503: SERVER_ERROR,
    504: TIMEOUT,
    529: SERVER_ERROR,
}
"""HTTP status codes worth retrying, with their error class; any other status is not.

504 counts as a timeout, as litellm maps it to ``litellm.Timeout``; 529 is
Anthropic's "overloaded".

Example:
    >>> RETRIABLE_STATUS_CODES[429]
    'rate_limit'
    >>> 400 in RETRIABLE_STATUS_CODES
    False
"""

# Verdicts of a type rule besides the error classes above.
_NEVER: Final = "never"  # never retried, whatever the status code says
_BY_STATUS: Final = "by_status"  # decided by the HTTP status code alone
_WRAPPER: Final = "wrapper"  # a server error, unless the chained cause says timeout or connection
_MID_STREAM: Final = "mid_stream"  # the class of ``original_exception``, else a server error

_NEVER_NAMES: Final = (
    "NotImplementedError",
    "TypeError",
    "AttributeError",
    "LookupError",  # KeyError, IndexError
    "NameError",  # UnboundLocalError
    "AssertionError",
    "ImportError",
    "SyntaxError",
    "ArithmeticError",
    "RecursionError",
    "MemoryError",  # this process is short of memory, not the server
)

_HTTPX_RULES: Final[dict[str, str]] = {
    "TimeoutException": TIMEOUT,
    "NetworkError": CONNECTION,
    "RemoteProtocolError": CONNECTION,
    "LocalProtocolError": _NEVER,
    "UnsupportedProtocol": _NEVER,
    "TransportError": CONNECTION,
    "DecodingError": _NEVER,
    "TooManyRedirects": _NEVER,
    "InvalidURL": _NEVER,
    "HTTPStatusError": _BY_STATUS,
}
"""httpx's exception classes by name; httpx2 (openai 3.x) uses the same table."""

_RULES_BY_MODULE: Final[dict[str, dict[str, str]]] = {
    "litellm": {
        "RateLimitError": RATE_LIMIT,
        "Timeout": TIMEOUT,
        "APIConnectionError": CONNECTION,
        "MidStreamFallbackError": _MID_STREAM,
        "ServiceUnavailableError": SERVER_ERROR,
        "BadGatewayError": SERVER_ERROR,
        # litellm turns dropped and refused connections into a 500 too, with
        # openai's APIConnectionError in the chain.
        "InternalServerError": _WRAPPER,
        # litellm raises BadRequestError for 401, 408 and 422 as well, with the
        # real status on it; its subclasses below are never retried.
        "BadRequestError": _BY_STATUS,
        "ContextWindowExceededError": _NEVER,
        "ContentPolicyViolationError": _NEVER,
        "PaymentRequiredError": _NEVER,
        "UnsupportedParamsError": _NEVER,
        "ImageFetchError": _NEVER,
        "RejectedRequestError": _NEVER,
        "LiteLLMUnknownProvider": _NEVER,
        "InvalidRequestError": _NEVER,
        "AuthenticationError": _NEVER,
        "PermissionDeniedError": _NEVER,
        "NotFoundError": _NEVER,
        "UnprocessableEntityError": _NEVER,
        "APIResponseValidationError": _NEVER,
        "BudgetExceededError": _NEVER,
        "GuardrailRaisedException": _NEVER,
        "BlockedPiiEntityError": _NEVER,
        "APIError": _BY_STATUS,
    },
    "openai": {
        "RateLimitError": RATE_LIMIT,
        "APITimeoutError": TIMEOUT,
        "APIConnectionError": CONNECTION,
        "InternalServerError": SERVER_ERROR,
        "BadRequestError": _BY_STATUS,
        "AuthenticationError": _NEVER,
        "PermissionDeniedError": _NEVER,
        "NotFoundError": _NEVER,
        "ConflictError": _NEVER,
        "UnprocessableEntityError": _NEVER,
        "APIResponseValidationError": _NEVER,
        "LengthFinishReasonError": _NEVER,
        "ContentFilterFinishReasonError": _NEVER,
        "APIStatusError": _BY_STATUS,
        "APIError": _BY_STATUS,
    },
    "adk_retry": {
        # Made from an ADK response only when the policy opts in to retrying it.
        "MalformedFunctionCallError": MALFORMED_FUNCTION_CALL,
    },
    "google.adk": {
        # google-adk's Gemini wraps a genai ClientError with code 429 in it.
        "_ResourceExhaustedError": RATE_LIMIT,
    },
    "google.genai": {
        "ServerError": SERVER_ERROR,
        "ClientError": _BY_STATUS,  # retried only with code 429
        "APIError": _BY_STATUS,
    },
    # openai 3.x moved its transport to httpx2, whose exceptions have httpx's
    # names and hierarchy: the family shares one table, so a twin cannot drift.
    "httpx": _HTTPX_RULES,
    "httpx2": _HTTPX_RULES,
    "aiohttp": {
        "ServerTimeoutError": TIMEOUT,
        "ClientSSLError": _NEVER,
        "ClientConnectorCertificateError": _NEVER,
        "ClientConnectorSSLError": _NEVER,
        "ServerFingerprintMismatch": _NEVER,
        "ClientConnectionError": CONNECTION,
        "ClientPayloadError": CONNECTION,
        "TooManyRedirects": _NEVER,
        "ClientResponseError": _BY_STATUS,
        "InvalidURL": _NEVER,
        "NonHttpUrlClientError": _NEVER,
        "RedirectClientError": _NEVER,
    },
    "builtins": {
        "TimeoutError": TIMEOUT,  # asyncio.TimeoutError and socket.timeout too
        "ConnectionError": CONNECTION,  # reset, refused, aborted, broken pipe
        **dict.fromkeys(_NEVER_NAMES, _NEVER),
    },
}


def _index(rules: dict[str, dict[str, str]]) -> dict[str, tuple[tuple[str, str], ...]]:
    """class name -> ((module prefix, verdict), ...): one dict lookup per MRO entry."""
    index: dict[str, tuple[tuple[str, str], ...]] = {}
    for module, names in rules.items():
        for name, verdict in names.items():
            index[name] = (*index.get(name, ()), (module, verdict))
    return index


_RULES: Final = _index(_RULES_BY_MODULE)

_OOM_MARKERS: Final = (
    "requires more system memory",  # Ollama: "model requires more system memory (X GiB) than is available"
    "out of memory",  # "CUDA out of memory", "cudaMalloc failed: out of memory"
    "failed to allocate",
    "unable to allocate",
    "insufficient memory",
    "not enough memory",
)
_OOM_MODULES: Final = ("litellm", "openai")
_CHAIN_DEPTH: Final = 6
# Verdicts per exception class; bounded in case classes are made on the fly.
_CACHE_SIZE: Final = 1024
_RULE_CACHE: dict[type[BaseException], str] = {}
_PROVIDER_CACHE: dict[type[BaseException], bool] = {}


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth another attempt: the ``"transient"`` preset.

    Example:
        >>> is_transient(ConnectionResetError())
        True
        >>> is_transient(ValueError("No message in response"))
        True
        >>> is_transient(TypeError("unsupported operand"))
        False
    """
    return error_class(exc) is not None


def error_class(exc: BaseException) -> str | None:
    """The kind of transient failure ``exc`` is, or ``None`` when it is not transient.

    One of :data:`RATE_LIMIT`, :data:`SERVER_ERROR`, :data:`TIMEOUT`,
    :data:`CONNECTION`, :data:`EMPTY_RESPONSE`, :data:`OUT_OF_MEMORY`. Only
    ``Exception`` subclasses can be transient: ``asyncio.CancelledError``,
    ``KeyboardInterrupt`` and ``SystemExit`` never are. An exception of no
    known type is judged by its HTTP status code (:func:`status_code`), and
    is not transient without one.

    Example:
        >>> class ProviderError(Exception):
        ...     status_code = 503
        >>> error_class(ProviderError())
        'server_error'
        >>> ProviderError.status_code = 401
        >>> error_class(ProviderError()) is None
        True
        >>> error_class(ValueError("No message in response"))
        'empty_response'
        >>> import asyncio
        >>> error_class(asyncio.CancelledError()) is None
        True
    """
    if not isinstance(exc, Exception):
        return None
    try:
        return _classify(exc, _rule_for(type(exc)), nested=False)
    except Exception:  # an exception too odd to judge is not retried, and is not replaced either
        return None


def fallback_class(exc: BaseException) -> str | None:
    """The class a fallback decision reads: :func:`error_class`, else one of :data:`FALLBACK_ONLY_CLASSES`.

    Judged by type name along the MRO, as :func:`error_class` is, so no
    provider library is imported.

    Example:
        >>> class ContextWindowExceededError(Exception):  # stands in for litellm's
        ...     pass
        >>> ContextWindowExceededError.__module__ = "litellm.exceptions"
        >>> fallback_class(ContextWindowExceededError("too long")), error_class(ContextWindowExceededError())
        ('context_window_exceeded', None)
        >>> fallback_class(ConnectionResetError())
        'connection'
    """
    kind = error_class(exc)
    if kind is not None or not isinstance(exc, Exception):
        return kind
    try:
        for klass in type(exc).__mro__:
            for prefix, verdict in _FALLBACK_RULES.get(klass.__name__, ()):
                if _in_module(klass, prefix):
                    return verdict
    except Exception:  # never replace the original error
        return None
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a model server's out-of-memory answer (Ollama and the like).

    litellm raises ``APIConnectionError``, ``InternalServerError`` or even
    ``BadRequestError`` for these, so only the text tells them apart: an
    exception from litellm or the openai SDK whose message says the model
    does not fit in memory. A ``MemoryError`` of this process is not one.

    Example:
        >>> class APIConnectionError(Exception):  # stands in for litellm's
        ...     pass
        >>> APIConnectionError.__module__ = "litellm.exceptions"
        >>> is_out_of_memory(APIConnectionError(
        ...     "OllamaException - model requires more system memory (5.5 GiB) than is available (3.2 GiB)"))
        True
        >>> is_out_of_memory(MemoryError("out of memory"))
        False
    """
    if not _from_provider_library(type(exc)):
        return False
    text = safe_text(exc).lower()  # a broken __str__ must not break classification
    return any(marker in text for marker in _OOM_MARKERS)


def status_code(exc: BaseException) -> int | None:
    """The HTTP status code ``exc`` carries, or ``None``.

    Looked up in order: ``exc.status_code`` (litellm, openai), ``exc.status``
    (aiohttp, urllib), ``exc.response.status_code`` (httpx), and ``exc.code``
    (google-genai, urllib). Only codes from 100 to 599 count, as an int or
    a three-digit string (litellm puts ``"429"`` in ``code``), so a WebSocket
    close code or an error name such as ``"rate_limit_exceeded"`` is ignored.

    Example:
        >>> class GenaiLikeError(Exception):
        ...     code = 429
        >>> status_code(GenaiLikeError())
        429
        >>> class WebSocketClosed(Exception):
        ...     code = 1011
        >>> status_code(WebSocketClosed()) is None
        True
    """
    # ``status`` before ``code``: aiohttp deprecates ``ClientResponseError.code``
    # (a warning on every read), and google-genai's ``status`` is a name, not a number.
    for value in (
        safe_attr(exc, "status_code"),
        safe_attr(exc, "status"),
        safe_attr(safe_attr(exc, "response"), "status_code"),
        safe_attr(exc, "code"),
    ):
        code = _as_status(value)
        if code is not None:
            return code
    return None


def _classify(exc: BaseException, rule: str, *, nested: bool) -> str | None:
    if seed_default(exc):
        return EMPTY_RESPONSE
    if rule not in (RATE_LIMIT, TIMEOUT) and is_out_of_memory(exc):
        return OUT_OF_MEMORY
    if rule == _BY_STATUS:
        return _by_status(exc)
    if rule == _NEVER:
        return None
    if rule == _WRAPPER:
        return _from_chain(exc) or SERVER_ERROR
    if rule == _MID_STREAM:
        original = safe_attr(exc, "original_exception")
        if not nested and isinstance(original, Exception) and original is not exc:
            return _classify(original, _rule_for(type(original)), nested=True) or SERVER_ERROR
        return SERVER_ERROR
    return rule


def _by_status(exc: BaseException) -> str | None:
    code = status_code(exc)
    return None if code is None else RETRIABLE_STATUS_CODES.get(code)


def _from_chain(exc: BaseException) -> str | None:
    """TIMEOUT or CONNECTION when a wrapped cause says so (litellm's 500 for a dropped connection)."""
    seen: BaseException | None = exc.__cause__ or exc.__context__
    for _ in range(_CHAIN_DEPTH):
        if seen is None:
            return None
        verdict = _rule_for(type(seen))
        if verdict in (TIMEOUT, CONNECTION):
            return verdict
        seen = seen.__cause__ or seen.__context__
    return None


def _rule_for(cls: type[BaseException]) -> str:
    """The verdict of the first class in ``cls``'s MRO that has a rule, cached per class."""
    verdict = _RULE_CACHE.get(cls)
    if verdict is None:
        if len(_RULE_CACHE) >= _CACHE_SIZE:
            _RULE_CACHE.clear()
        verdict = _RULE_CACHE[cls] = _find_rule(cls)
    return verdict


def _find_rule(cls: type[BaseException]) -> str:
    for klass in cls.__mro__:
        candidates = _RULES.get(klass.__name__)
        if candidates:
            for prefix, verdict in candidates:
                if _in_module(klass, prefix):
                    return verdict
    return _BY_STATUS


def _from_provider_library(cls: type[BaseException]) -> bool:
    known = _PROVIDER_CACHE.get(cls)
    if known is None:
        if len(_PROVIDER_CACHE) >= _CACHE_SIZE:
            _PROVIDER_CACHE.clear()
        known = _PROVIDER_CACHE[cls] = any(
            _in_module(klass, prefix) for klass in cls.__mro__ for prefix in _OOM_MODULES
        )
    return known


def _in_module(klass: type, prefix: str) -> bool:
    module = klass.__module__
    return module == prefix or module.startswith(prefix + ".")


def _as_status(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and len(value) == 3 and value.isdigit()):
        code = int(value)
    else:
        return None
    return code if 100 <= code <= 599 else None
