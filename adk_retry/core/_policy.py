"""``RetryPolicy``: every setting of adk-retry in one validated, immutable model.

Bad settings fail where they are written, as a ``pydantic.ValidationError``
naming the field, never later as a hang or a silent default::

    >>> RetryPolicy(max_retries=-1)
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for RetryPolicy
    max_retries
    ...
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator

from adk_retry.core import _empty as classify
from adk_retry.core._backoff import Backoff, base_delay_for, jittered
from adk_retry.core._breaker import CircuitBreaker
from adk_retry.core._budget import RetryBudget
from adk_retry.core._checks import is_async_callable, require_callable
from adk_retry.core._events import Hook
from adk_retry.core._limit import RateLimit
from adk_retry.core._plan import Plan
from adk_retry.core._rules import ErrorRule, Recovery
from adk_retry.core._store import StateStore

__all__ = [
    "POLICY_PRESETS",
    "TRANSIENT",
    "LogTemplates",
    "PolicyLike",
    "Predicate",
    "RetryOn",
    "RetryPolicy",
    "StreamMode",
    "as_policy",
]

Predicate: TypeAlias = Callable[[BaseException], bool]
"""A function that says whether an exception is worth another attempt."""

RetryOnItem: TypeAlias = str | type[BaseException] | Predicate
RetryOn: TypeAlias = RetryOnItem | tuple[RetryOnItem, ...]
"""What ``retry_on`` accepts: a preset name, an exception type, a predicate, or a tuple of them."""

StreamMode = Literal["pass_through", "buffer"]
"""How ``stream=True`` calls are retried; see :class:`RetryPolicy`."""


class _Http503(Exception):
    """A stand-in server error, to ask a policy whether it retries HTTP failures."""

    status_code = 503


def _retry_all(exc: BaseException) -> bool:
    return isinstance(exc, Exception)


def _presets() -> dict[str, Predicate]:
    # Imported late: the transient classifier knows many libraries and is
    # not needed by users of the default rule.
    from adk_retry.core._transient import is_transient

    return {"default": classify.seed_default, "all": _retry_all, "transient": is_transient}


TRANSIENT = "transient"
"""``retry_on=TRANSIENT``: rate limits, 5xx, timeouts, dropped connections, Ollama
out-of-memory and empty answers; never 4xx, cancellation or programming errors.
See :mod:`adk_retry.core._transient`."""

PRESET_NAMES = ("all", "default", TRANSIENT)


# The fields each template is formatted with (see adk_retry.engine._loop), and a
# sample of each, to try a template on when it is written.
_SAMPLE_FIELDS: dict[str, Any] = {
    "agent": "agent",
    "attempt": 1,
    "max_attempts": 4,
    "attempts": 4,
    "delay": 1.0,
    "error": "error",
    "error_type": "ValueError",
    "reason": "backoff",
}
_ATTEMPT = ("agent", "attempt", "max_attempts")
_FAILURE = (*_ATTEMPT, "error", "error_type", "reason")
_TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "retrying": (*_FAILURE, "delay"),
    "succeeded": _ATTEMPT,
    "gave_up": (*_FAILURE, "attempts"),
    "hinted": (*_FAILURE, "delay"),
}
# "{agent}": str.format style, which %-formatting would print as it stands.
_BRACE_FIELD = re.compile(r"\{(\w+)(?:[!:][^{}]*)?\}")


class _Unnamed(Exception):
    """A template converted the whole field mapping: a ``%s`` without ``(name)``."""


class _Fields(dict[str, Any]):
    """The sample fields; ``"100% sure" % fields`` would print the mapping itself ("% s"), so that raises."""

    def __str__(self) -> str:
        raise _Unnamed

    __repr__ = __str__


class LogTemplates(BaseModel):
    """The log lines a policy writes, as ``%``-style templates over named fields.

    Fields available: ``agent``, ``attempt``, ``max_attempts`` in every
    template; ``error``, ``error_type`` and ``reason`` in ``retrying``,
    ``hinted`` and ``gave_up``; ``delay`` in ``retrying`` and ``hinted``;
    ``attempts`` in ``gave_up``. Each template is a tuple: one log record per
    line (SwarmSDK logs two lines per retry). ``hinted`` is logged (INFO)
    when a server hint such as ``Retry-After`` set the delay, ``gave_up``
    carries the reason in ``extra`` (attempts exhausted, deadline, retry
    budget exhausted, circuit open, hint over ``max_hint_delay``).

    A template that would fail when logged (an unknown field such as
    ``%(agnet)s``, a bad conversion, a lone ``%``) or that uses
    ``{field}`` (``str.format`` style, which would be logged as written) is
    refused here, as a ``ValidationError`` naming the template.

    Example:
        >>> LogTemplates().succeeded
        ('[%(agent)s] Model request succeeded on attempt %(attempt)d',)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    retrying: tuple[str, ...] = (
        "[%(agent)s] Model request failed (attempt %(attempt)d/%(max_attempts)d): %(error)s. "
        "Retrying in %(delay).1fs...",
    )
    succeeded: tuple[str, ...] = ("[%(agent)s] Model request succeeded on attempt %(attempt)d",)
    gave_up: tuple[str, ...] = ("[%(agent)s] Model request failed after %(attempts)d attempts: %(error)s",)
    hinted: tuple[str, ...] = ("[%(agent)s] Retry delay set by the server: %(reason)s",)

    @field_validator("retrying", "succeeded", "gave_up", "hinted")
    @classmethod
    def _check_templates(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        assert info.field_name is not None
        known = _TEMPLATE_FIELDS[info.field_name]
        sample = _Fields({name: _SAMPLE_FIELDS[name] for name in known})
        for template in value:
            braced = _BRACE_FIELD.search(template)
            if braced is not None:
                raise ValueError(
                    f"{template!r} uses {braced.group(0)}; templates are %-style: write %({braced.group(1)})s"
                )
            try:
                template % sample
            except KeyError as missing:
                raise ValueError(
                    f"{template!r} uses unknown field {missing.args[0]!r}; known fields: {', '.join(known)}"
                ) from None
            except _Unnamed:
                raise ValueError(
                    f"{template!r} has a conversion without a field name (write %(agent)s, and %% for a percent sign)"
                ) from None
            except (TypeError, ValueError) as error:
                raise ValueError(f"{template!r} cannot be formatted: {error}") from None
        return value


class RetryPolicy(BaseModel):
    """How a model call is retried. Immutable; every field is validated.

    Defaults are the ADK seed's: up to 3 retries (4 attempts), exponential
    delays of about 1, 2 and 4 s (``min(1.0 * 2.0 ** k, 8.0)`` with ±20 %
    jitter), and only a missing model message is retried.

    Fields:
        max_retries: retries after the first attempt (0 turns retry off).
        base_delay: the first delay, in seconds.
        max_delay: the cap on the computed delay, before jitter.
        backoff_multiplier: growth factor of the exponential schedule (>= 1).
        jitter: relative spread, in ``[0, 1]``: 0.2 means ±20 %.
        backoff: ``"exponential"`` (default), ``"linear"`` or ``"fixed"``.
        retry_on: what is retried: ``"default"`` (the seed's missing-message
            rule), ``"transient"`` (rate limits, 5xx, timeouts, dropped
            connections, plus the default), ``"all"`` (every ``Exception``),
            an exception type, a predicate ``(exc) -> bool``, or a tuple of
            these (any match retries).
        stream_mode: for ``stream=True`` calls. ``"pass_through"`` (default)
            yields chunks as they arrive; a failure before the first chunk is
            retried, one after it propagates, because two attempts must never
            be spliced into one answer. ``"buffer"`` holds each attempt's
            chunks until it succeeds: all-or-nothing, at the cost of the time
            to the first chunk.
        max_hint_delay: the longest wait a server may ask for (``Retry-After``,
            ``retry-after-ms``, Google ``RetryInfo``, "retry in 53s"). A hint
            is used instead of the computed delay (plus up to 10 % jitter); a
            longer hint gives up at once with the original error, as the
            OpenAI SDK does above 120 s.
        timeout: a total time budget for one model call, attempts and sleeps
            included: an attempt still running at the deadline is cancelled
            (``TimeoutError``), and no retry starts whose wait would end past
            it. None (the default) means no budget.
        attempt_timeout: a limit for one attempt (for a stream, until its
            first chunk), enforced by cancelling the attempt, which closes its
            HTTP connection; the resulting ``TimeoutError`` is retried like
            any other timeout when ``retry_on`` accepts it. None: no limit.
        retry_malformed_function_calls: count a response whose tool-call
            arguments did not parse (``error_code="MALFORMED_FUNCTION_CALL"``,
            as google-adk 2.13's ``LiteLlm`` and Gemini report it) as a failed
            attempt and send the request again; when retries run out,
            :class:`~adk_retry.core._errors.MalformedFunctionCallError` (with the
            ``response``) is raised. Off by default: the response then reaches
            ADK as it is, where ``ReflectAndRetryModelPlugin`` may re-prompt.
            Its error class is ``"malformed_function_call"``. On google-adk
            2.3, whose ``LiteLlm`` raises ``json.JSONDecodeError`` for such
            arguments, that error is retried instead (and re-raised as it is).
        rules: per-error-class handling (:class:`~adk_retry.core._rules.ErrorRule`):
            own backoff, own retry limit, a recovery hook. First match wins.
        keep_lower_retries: when this policy retries HTTP errors, adk-retry
            turns off the retries beneath it (litellm's ``num_retries``, the
            OpenAI SDK's ``max_retries``, per-request ``retry_options``,
            Gemini's ``retry_options``) on the model it wraps, so one call
            sends at most ``max_retries + 1`` requests. True keeps them.
        budget: a :class:`~adk_retry.core._budget.RetryBudget` (off by default).
        breaker: a :class:`~adk_retry.core._breaker.CircuitBreaker` (off by default).
        rate_limit: a :class:`~adk_retry.core._limit.RateLimit` (off by default):
            every attempt, retries included, waits for admission (requests
            and tokens per minute, a concurrency cap, server hints held for
            the whole scope), or ``RateLimit(adaptive=True)`` learns the
            provider's rate from its 429s.
        adaptive: stretch delays while a model's recent failure rate is high
            (never below the configured schedule); see :mod:`adk_retry.guards._adaptive`.
        store: where budget and breaker state live (default: this process's
            memory; :class:`~adk_retry.guards._redis.RedisStore` shares it).
        hooks: callables that receive each :class:`~adk_retry.core._events.RetryEvent`.
        log_templates: the log lines, see :class:`LogTemplates`.
        fallbacks: other models to move to, in order, when the model's
            retries run out (or at once, see ``fallback_on``): ``BaseLlm``
            instances, or names that ADK's ``LLMRegistry.new_llm`` resolves
            (resolved by the adapter at the first call that needs them, never
            here). Each model has its own schedule (``max_retries + 1``
            attempts each), budget, breaker and failure rate, keyed by its
            own name; every call starts on the primary; a call never moves
            after a streamed chunk reached the caller; the request is put
            back as the first attempt sent it, with its ``model`` field set
            to the model being tried (as ADK's ``FallbackModel`` does). Their
            retry layers are turned off as the primary's are. Logs, events
            (``"fallback"``) and ``RetryStats.answered_by`` name the model
            that answered. Prefer ADK's ``FallbackModel`` (google-adk 2.9+)
            when each model should be tried once per call and nothing else
            is wanted; use ``fallbacks`` for retries on each model with its
            own guards, fallback on error classes, an open circuit, or a
            deadline. The two compose: a ``FallbackModel`` may be the primary
            or a fallback, tried as one model under this one retry owner.
        fallback_on: error classes that move to the next model at once,
            without retrying this one: any of :data:`~adk_retry.core._transient.FALLBACK_CLASSES`
            (``"rate_limit"``, ``"server_error"``, ``"timeout"``,
            ``"context_window_exceeded"``, ``"content_policy"``,
            ``"circuit_open"``, ...). Default ``("circuit_open",)``: a model
            whose circuit is open is skipped. Used only with ``fallbacks``.
        hedge_after: seconds (opt-in). When an attempt has produced nothing
            after that long (for a stream: no chunk with content), one more
            attempt starts beside it (on the next model when there are
            ``fallbacks``, else the same one) without cancelling the first;
            the first with content wins, the other is cancelled and its
            connection closed; never two answers. A hedge is an attempt: it
            counts against ``max_retries``, spends a ``budget`` token, and is
            made only when the ``rate_limit`` admits it at once (a hedge that
            would queue for admission is not made). Choose it near the p95 of
            the healthy time to first chunk (Dean and Barroso, "The Tail at
            Scale"): below the healthy p90 the hedges add load that slows
            every call (measured: twice the requests), far above it a stall
            costs that much more.
        max_hedges: how many hedges one attempt may get (default 1), one more
            each ``hedge_after`` while every attempt so far is silent, as
            gRPC's hedging policy sends one each ``hedgingDelay`` up to
            ``maxAttempts``. With a fraction ``p`` of requests stalling, a
            hedge stalls too with the same ``p``: one hedge leaves ``p**2``
            of the calls stalled (1 % at p = 10 %, right at the p99), a second
            ``p**3``, for about ``p**2`` more requests.
        hedge_quantile: learn the delay instead (opt-in, with ``hedge_after``):
            once 20 attempts of this model have answered in this process,
            hedge after this quantile (0.95: "The Tail at Scale"'s p95) of
            the latest 200 times to their first content, so the delay
            follows the provider's and the client's load; ``hedge_after``
            is the delay until then. Only attempts that answered are counted:
            the stalled attempts a hedge beat never are, so a stall that hits
            more than 5 % of requests does not pull a p95 up into itself.

    Example:
        >>> policy = RetryPolicy(max_retries=2, base_delay=0.5)
        >>> policy.max_attempts
        3
        >>> policy.delay(1, u=0.5)
        1.0
        >>> policy.retries(ValueError("No message in response"))
        True
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    max_retries: int = Field(default=3, ge=0)
    base_delay: float = Field(default=1.0, ge=0.0, allow_inf_nan=False)
    max_delay: float = Field(default=8.0, ge=0.0, allow_inf_nan=False, validate_default=True)
    backoff_multiplier: float = Field(default=2.0, ge=1.0, allow_inf_nan=False)
    jitter: float = Field(default=0.2, ge=0.0, le=1.0)
    backoff: Backoff = "exponential"
    retry_on: RetryOn = "default"
    stream_mode: StreamMode = "pass_through"
    max_hint_delay: float = Field(default=120.0, ge=0.0, allow_inf_nan=False)
    timeout: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    attempt_timeout: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    retry_malformed_function_calls: bool = False
    rules: tuple[ErrorRule, ...] = ()
    keep_lower_retries: bool = False
    budget: RetryBudget | None = None
    breaker: CircuitBreaker | None = None
    rate_limit: RateLimit | None = None
    adaptive: bool = False
    store: StateStore | None = None
    hooks: tuple[Hook, ...] = ()
    log_templates: LogTemplates = LogTemplates()
    fallbacks: tuple[Any, ...] = ()
    fallback_on: tuple[str, ...] = ("circuit_open",)
    hedge_after: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    max_hedges: int = Field(default=1, ge=1)
    hedge_quantile: float | None = Field(default=None, gt=0.0, lt=1.0)

    _predicate: Predicate = PrivateAttr(default_factory=lambda: classify.seed_default)
    _owns: bool = PrivateAttr(default=False)
    _plan: Plan = PrivateAttr()

    @field_validator("max_hedges", "hedge_quantile")
    @classmethod
    def _check_hedging(cls, value: Any, info: ValidationInfo) -> Any:
        if value not in (None, 1) and info.data.get("hedge_after") is None:
            raise ValueError(f"{info.field_name} needs hedge_after (the delay of the first hedge)")
        return value

    @field_validator("retry_on", mode="before")
    @classmethod
    def _check_retry_on(cls, value: Any) -> Any:
        items = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        if not items:
            raise ValueError("retry_on needs at least one preset, exception type or predicate")
        for item in items:
            if isinstance(item, str):
                if item not in PRESET_NAMES:
                    raise ValueError(f"unknown preset {item!r}; expected one of {', '.join(PRESET_NAMES)}")
            elif isinstance(item, type):
                if not issubclass(item, BaseException):
                    raise ValueError(f"{item.__name__} is not an exception type")
            elif not callable(item):
                raise ValueError(f"{item!r} is neither a preset, an exception type nor a predicate")
            else:
                # Called with the failure: one that cannot take it would raise in its place.
                require_callable("RetryPolicy", "retry_on", item, arguments=1, error=ValueError)
        return items if isinstance(value, (list, tuple)) else value

    @field_validator("fallbacks", mode="before")
    @classmethod
    def _check_fallbacks(cls, value: Any) -> Any:
        items = (value,) if isinstance(value, str) or not isinstance(value, (list, tuple)) else tuple(value)
        for item in items:
            if isinstance(item, str):
                if not item.strip():
                    raise ValueError("a fallback model name must not be empty")
            elif not callable(getattr(item, "generate_content_async", None)):
                raise ValueError(f"{item!r} is neither a model name nor a model (BaseLlm) instance")
        return items

    @field_validator("fallback_on", mode="before")
    @classmethod
    def _check_fallback_on(cls, value: Any) -> Any:
        from adk_retry.core._transient import FALLBACK_CLASSES

        # One name, or a collection of them; anything else (None, a number) is one bad entry,
        # reported as this field's error rather than as a bare TypeError from tuple().
        items = tuple(value) if isinstance(value, (list, tuple, set, frozenset)) else (value,)
        for item in items:
            if item not in FALLBACK_CLASSES:
                raise ValueError(f"unknown error class {item!r}; expected one of {', '.join(FALLBACK_CLASSES)}")
        return items

    @field_validator("hooks")
    @classmethod
    def _check_hooks(cls, value: tuple[Hook, ...]) -> tuple[Hook, ...]:
        for hook in value:
            require_callable("RetryPolicy", "hooks", hook, arguments=1, error=ValueError)
            if is_async_callable(hook):
                # It would be called and never awaited: the event silently lost.
                raise ValueError(f"hooks are called synchronously; {hook!r} is a coroutine function")
        return value

    @field_validator("max_delay")
    @classmethod
    def _check_max_delay(cls, value: float, info: ValidationInfo) -> float:
        base = info.data.get("base_delay")
        if base is not None and value < base:
            raise ValueError(f"max_delay ({value}) must not be below base_delay ({base})")
        return value

    def model_post_init(self, context: Any, /) -> None:
        """Compile ``retry_on`` into one predicate, once, and ask it about HTTP errors."""
        self._predicate = _compile(self.retry_on)
        if self.retry_malformed_function_calls:
            # The opt-in is the decision: whatever retry_on says about other errors.
            self._predicate = _or_malformed(self._predicate)
        self._owns = not self.keep_lower_retries and _asks(self._predicate, _Http503("probe"))
        self._plan = Plan(self, self._predicate, self._owns)

    def __eq__(self, other: object) -> bool:
        # Equal when the fields are: the compiled plan (a private attribute)
        # is made anew by each instance and says nothing more.
        return type(other) is type(self) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        # Model instances (fallbacks) are Pydantic objects without a hash: by identity.
        return hash(tuple(tuple(map(id, v)) if k == "fallbacks" else v for k, v in self.__dict__.items()))

    @property
    def plan(self) -> Plan:
        """This policy compiled for the attempt loop (see :mod:`adk_retry.core._plan`)."""
        return self._plan

    @property
    def owns_lower_retries(self) -> bool:
        """Whether this policy retries HTTP errors and so turns off the retry layers beneath it.

        See :mod:`adk_retry.adapter._layers`; ``keep_lower_retries=True`` makes it False.
        """
        return self._owns

    @property
    def max_attempts(self) -> int:
        """The first attempt plus ``max_retries``."""
        return self.max_retries + 1

    def retries(self, exc: BaseException) -> bool:
        """Whether ``retry_on`` says ``exc`` is worth another attempt.

        Only ``Exception`` subclasses are ever retried: cancellation,
        ``KeyboardInterrupt`` and ``SystemExit`` never are, whatever the rule.
        """
        return isinstance(exc, Exception) and self._predicate(exc)

    # -- presets: each seed's style ---------------------------------------------------------

    @classmethod
    def adk_seed(cls, **overrides: Any) -> RetryPolicy:
        """The ADK seed's policy: 3 retries, ~1, 2, 4 s (x2, capped at 8 s, ±20 %), a missing message only.

        The same as ``RetryPolicy()``; named for symmetry with the other presets.

        Example:
            >>> RetryPolicy.adk_seed() == RetryPolicy()
            True
        """
        return cls(**overrides)

    @classmethod
    def transient(cls, **overrides: Any) -> RetryPolicy:
        """The seed's schedule over every transient failure (``retry_on="transient"``).

        Rate limits, 5xx, timeouts, dropped connections, Ollama out-of-memory
        and empty answers; never 4xx, cancellation or programming errors.
        Server hints are honoured and the retry layers beneath are turned off.

        Example:
            >>> RetryPolicy.transient().retry_on
            'transient'
        """
        return cls(**{"retry_on": "transient", **overrides})

    @classmethod
    def codeworm(cls, *, oom_recovery: Recovery | None = None, **overrides: Any) -> RetryPolicy:
        """CodeWorm's ``OllamaClient.generate_with_retry``: 3 attempts, linear ``2 s x (attempt + 1)``.

        Timeouts and connection errors are retried after 2 s then 4 s; an
        out-of-memory answer runs ``oom_recovery`` and retries without a
        wait; when attempts run out the last error is raised. The default
        recovery is :class:`adk_retry.contrib.ollama.OllamaOOMRecovery` with
        ``unload_self=True``: it unloads the models on the Ollama server,
        the failing one included, as CodeWorm's ``_recover_from_oom`` does.

        Example:
            >>> policy = RetryPolicy.codeworm()
            >>> policy.max_attempts, policy.delay(0, u=0.5), policy.delay(1, u=0.5)
            (3, 2.0, 4.0)
        """
        from adk_retry.contrib.ollama import OllamaOOMRecovery
        from adk_retry.core._rules import ErrorRule

        recover = oom_recovery if oom_recovery is not None else OllamaOOMRecovery(unload_self=True)
        oom = ErrorRule(match="out_of_memory", backoff="fixed", base_delay=0.0, recover=recover)
        fields: dict[str, Any] = {
            "max_retries": 2,
            "backoff": "linear",
            "base_delay": 2.0,
            "max_delay": 60.0,
            "jitter": 0.0,
            "retry_on": _codeworm_retriable,
            "rules": (oom,),
        }
        return cls(**{**fields, **overrides})

    @classmethod
    def swarm_sdk(cls, **overrides: Any) -> RetryPolicy:
        """SwarmSDK's ``call_llm_with_retry``: 10 attempts, a fixed 10 s, every exception, its log lines.

        Example:
            >>> policy = RetryPolicy.swarm_sdk()
            >>> policy.max_attempts, policy.delay(5, u=0.9), policy.retries(KeyError("x"))
            (10, 10.0, True)
        """
        fields: dict[str, Any] = {
            "max_retries": 9,
            "backoff": "fixed",
            "base_delay": 10.0,
            "max_delay": 10.0,
            "jitter": 0.0,
            "retry_on": "all",
            "log_templates": LogTemplates(
                retrying=(
                    "LLM call failed (attempt %(attempt)d/%(max_attempts)d): %(error_type)s: %(error)s",
                    "Retrying in %(delay)g seconds...",
                ),
                succeeded=(),
                gave_up=("LLM call failed after %(attempts)d attempts: %(error_type)s: %(error)s",),
            ),
        }
        return cls(**{**fields, **overrides})

    def delay(self, failed_attempt: int, u: float) -> float:
        """The jittered delay after failed attempt ``failed_attempt`` (from 0), given ``u`` in [0, 1)."""
        base = base_delay_for(
            failed_attempt,
            backoff=self.backoff,
            base=self.base_delay,
            multiplier=self.backoff_multiplier,
            cap=self.max_delay,
        )
        return jittered(base, self.jitter, u)


def _asks(predicate: Predicate, exc: BaseException) -> bool:
    """``predicate(exc)``; a predicate that raises says no (its bug must not fail the call it judges)."""
    try:
        return bool(predicate(exc))
    except Exception:
        return False


def _codeworm_retriable(exc: BaseException) -> bool:
    """CodeWorm retries timeouts, connection errors and out-of-memory answers."""
    from adk_retry.core._transient import error_class

    return error_class(exc) in ("timeout", "connection", "out_of_memory")


def _or_malformed(predicate: Predicate) -> Predicate:
    """``predicate``, or tool-call arguments that did not parse.

    google-adk 2.13 reports those as a response (made into a
    :class:`~adk_retry.core._errors.MalformedFunctionCallError` by the wrapper);
    google-adk 2.3's ``LiteLlm`` raises the ``json.JSONDecodeError`` itself.
    """
    from json import JSONDecodeError

    from adk_retry.core._errors import MalformedFunctionCallError

    malformed = (MalformedFunctionCallError, JSONDecodeError)
    return lambda exc: isinstance(exc, malformed) or predicate(exc)


def _compile(retry_on: RetryOn) -> Predicate:
    items: Sequence[RetryOnItem] = retry_on if isinstance(retry_on, tuple) else (retry_on,)
    presets = _presets() if any(isinstance(item, str) for item in items) else {}
    predicates: list[Predicate] = []
    types: list[type[BaseException]] = []
    for item in items:
        if isinstance(item, str):
            predicates.append(presets[item])
        elif isinstance(item, type):
            types.append(item)
        else:
            predicates.append(item)
    if types:
        exc_types = tuple(types)
        predicates.append(lambda exc: isinstance(exc, exc_types))
    if len(predicates) == 1:
        return predicates[0]
    checks = tuple(predicates)
    return lambda exc: any(check(exc) for check in checks)


POLICY_PRESETS = ("adk_seed", "transient", "codeworm", "swarm_sdk")
"""The preset names :func:`as_policy` accepts: each :class:`RetryPolicy` classmethod of that name."""

PolicyLike: TypeAlias = RetryPolicy | str | Mapping[str, Any] | None
"""What ``RetryPlugin`` and ``RetryHandler`` take as a policy: a :class:`RetryPolicy`,
a preset name (``"transient"``), a mapping of fields (``{"max_retries": 5}``), or None
(the default policy)."""


def as_policy(policy: PolicyLike, *, owner: str = "policy") -> RetryPolicy:
    """The :class:`RetryPolicy` that ``policy`` stands for; anything else fails here.

    ``owner`` names the caller in the error. A mapping is validated as
    ``RetryPolicy(**mapping)`` is (a ``ValidationError`` naming the field);
    an unknown preset name is a ``ValueError`` listing the known ones; any
    other type is a ``TypeError``.

    Example:
        >>> as_policy("transient") == RetryPolicy.transient()
        True
        >>> as_policy({"max_retries": 5}).max_retries
        5
        >>> as_policy(None) == RetryPolicy()
        True
    """
    if policy is None:
        return RetryPolicy()
    if isinstance(policy, RetryPolicy):
        return policy
    if isinstance(policy, str):
        if policy not in POLICY_PRESETS:
            raise ValueError(
                f"{owner}: unknown policy preset {policy!r}; expected one of {', '.join(POLICY_PRESETS)}"
                " (or a RetryPolicy, or a dict of its fields)"
            )
        preset: Callable[[], RetryPolicy] = getattr(RetryPolicy, policy)
        return preset()
    if isinstance(policy, Mapping):
        return RetryPolicy.model_validate(dict(policy))
    raise TypeError(
        f"{owner}: policy must be a RetryPolicy, a preset name ({', '.join(POLICY_PRESETS)}) "
        f"or a dict of RetryPolicy fields, got {type(policy).__name__}: {policy!r}"
    )
