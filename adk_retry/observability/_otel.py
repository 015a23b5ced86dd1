"""Aggregate statistics and OpenTelemetry metrics and span events for adk-retry.

Two things live here.

**Aggregate views**, with no dependency at all: :func:`stats_by_agent` sums
the statistics of every live :class:`~adk_retry.RetryHandler` by agent name,
:func:`stats_by_model` those of every wrapped model by model name, and
:func:`merge` adds two :class:`~adk_retry.RetryStats`.

**OpenTelemetry**, through ``opentelemetry-api`` only (the SDK is the
application's choice). Attribute names follow the OpenTelemetry GenAI and
general semantic conventions, taken from ``opentelemetry-semantic-conventions``
(see :mod:`adk_retry.observability._semconv`), so they line up with ADK's own
``gen_ai.*`` telemetry; what the conventions do not name is under
``adk_retry.``. :func:`enable_metrics` creates these instruments on the meter
``adk_retry`` (names unchanged since 0.1; the attribute names changed in 0.2):

================================  ===================  ==========================================
instrument                        kind                 attributes
================================  ===================  ==========================================
``adk_retry.calls``               observable counter   ``gen_ai.agent.name``, ``adk_retry.outcome``
                                                       (``success``, ``failure``, ``circuit_open``)
``adk_retry.attempts``            observable counter   ``gen_ai.agent.name``
``adk_retry.retries``             observable counter   ``gen_ai.agent.name``
``adk_retry.give_ups``            counter              ``gen_ai.agent.name``, ``gen_ai.request.model``,
                                                       ``gen_ai.provider.name``, ``error.type``,
                                                       ``adk_retry.error_class``, ``adk_retry.reason``,
                                                       ``http.request.resend_count``
``adk_retry.backoff_delay``       histogram (``s``)    ``gen_ai.agent.name``, ``gen_ai.request.model``,
                                                       ``gen_ai.provider.name``, ``error.type``,
                                                       ``adk_retry.error_class``, ``adk_retry.reason``
                                                       (``backoff`` or ``hint``)
``adk_retry.breaker_transitions`` counter              ``gen_ai.request.model``, ``gen_ai.provider.name``,
                                                       ``adk_retry.breaker.state``
``adk_retry.budget_denials``      counter              ``gen_ai.agent.name``, ``gen_ai.request.model``,
                                                       ``gen_ai.provider.name``, ``error.type``,
                                                       ``adk_retry.error_class``
================================  ===================  ==========================================

Each failed attempt of a call shows in its trace, as events on the current
span (with ADK tracing, its ``generate_content <model>`` model-call span,
under ``call_llm`` in ADK's legacy schema): ``adk_retry.retry`` for an attempt
that failed and is retried (its ``error.type``, the backoff in
``adk_retry.delay``), ``adk_retry.give_up`` for the one after which the call
gave up, and ``adk_retry.success`` for the attempt that answered after
retries. Each carries ``adk_retry.attempt`` and ``http.request.resend_count``
(the attempt minus one) and the ``gen_ai.*`` names above. A first attempt
that succeeds adds nothing.

Why it costs nothing on the success path: the three observable counters read
the counters every handler keeps anyway, in callbacks that run only when a
metric reader collects; everything else is fed by
:class:`~adk_retry.core._events.RetryEvent` s, which handlers emit only on the
failure path (a retry, a give-up, a breaker change, a budget denial). No
``add()`` runs per attempt. Without a configured ``MeterProvider`` the
instruments are the API's no-op proxies.

``give_ups`` is event-driven, not observed, so that it can carry the error
class and the reason. It counts retriable failures whose retries ran out
(attempts, deadline, budget, open circuit, a server hint over
``max_hint_delay``); failures that were never retriable (a 400) are not give
ups: they show in ``adk_retry.calls{outcome="failure"}``.

Nothing is enabled at import. The first :class:`~adk_retry.RetryHandler`
made in the process enables the metrics on the *global* providers
(:func:`instrument_on_first_use`), so an application only has to set its
``MeterProvider`` and ``TracerProvider``, before or after. Set the
environment variable ``ADK_RETRY_OTEL=0`` to opt out.

Attribute values are strings and numbers only; exceptions appear by type
name and transient class, never by message (a message may carry a secret).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, TypeVar

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace

from adk_retry.core._events import EventKind, RetryEvent, global_hooks
from adk_retry.observability import _semconv as names
from adk_retry.observability._stats import RetryStats
from adk_retry.observability._views import _ledger

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from opentelemetry.trace import Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

__all__ = [
    "INSTRUMENTS",
    "SPAN_EVENT",
    "SPAN_EVENTS",
    "Metrics",
    "enable_metrics",
    "give_up_reason",
    "instrument_on_first_use",
    "span_attributes",
]

SPAN_EVENT = "adk_retry.retry"
"""The name of the span event (and fallback span) that records one retried attempt."""

SPAN_EVENTS: Mapping[EventKind, str] = {
    "retry": SPAN_EVENT,
    "give_up": "adk_retry.give_up",
    "success_after_retry": "adk_retry.success",
}
"""The span event recorded for each kind of :class:`RetryEvent` that concerns one attempt."""

INSTRUMENTS = (
    "adk_retry.calls",
    "adk_retry.attempts",
    "adk_retry.retries",
    "adk_retry.give_ups",
    "adk_retry.backoff_delay",
    "adk_retry.breaker_transitions",
    "adk_retry.budget_denials",
    "adk_retry.fallbacks",
    "adk_retry.hedges",
    "adk_retry.rate_limit.wait",
    "adk_retry.rate_limit.rejections",
)
"""The names of the instruments :func:`enable_metrics` creates."""

# Seconds: a retry waits from tens of milliseconds (a hint) to minutes (max_hint_delay).
_DELAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 60.0, 120.0, 300.0)
_UNKNOWN_MODEL = "unknown"
_UNCLASSIFIED = "other"

_T = TypeVar("_T")


# -- OpenTelemetry ----------------------------------------------------------------------------------


@functools.cache
def _version() -> str:
    try:
        return importlib.metadata.version("adk-retry")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"


class Metrics:
    """adk-retry's OpenTelemetry instruments on one meter provider; made by :func:`enable_metrics`.

    It is a hook: while enabled it sits in :data:`adk_retry.core._events.global_hooks`
    and turns failure-path events into measurements. There is one per meter
    provider, for the life of that provider: the OpenTelemetry SDK keeps the
    first callbacks registered under an instrument name and ignores later
    ones, so instruments are created once and re-enabling reuses them.

    Attributes:
        tracer_provider: the provider of the fallback spans, if any (see :func:`enable_metrics`).
        enabled: whether it records.

    Example:
        >>> from opentelemetry.sdk.metrics import MeterProvider
        >>> from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        >>> reader = InMemoryMetricReader()
        >>> telemetry = enable_metrics(meter_provider=MeterProvider(metric_readers=[reader]))
        >>> telemetry.enabled, telemetry in global_hooks
        (True, True)
        >>> telemetry.disable()
        >>> telemetry.enabled, telemetry in global_hooks
        (False, False)
    """

    def __init__(self, meter_provider: MeterProvider | None, tracer_provider: TracerProvider | None = None) -> None:
        # Held weakly when possible: the registry maps a provider to its Metrics,
        # and a strong reference back would keep every provider alive.
        self._meter_provider: Callable[[], MeterProvider | None]
        try:
            self._meter_provider = weakref.ref(meter_provider) if meter_provider is not None else _none
        except TypeError:
            self._meter_provider = lambda: meter_provider
        self.enabled = False
        self.tracer_provider: TracerProvider | None = None
        self._tracer: Tracer | None = None
        self.use_tracer_provider(tracer_provider)
        # With no provider this is the API's proxy meter: its instruments start
        # recording once the application sets a global MeterProvider.
        meter = otel_metrics.get_meter("adk_retry", _version(), meter_provider=meter_provider)
        meter.create_observable_counter(
            "adk_retry.calls",
            callbacks=[self._observe_calls],
            unit="{call}",
            description="Model calls ended, by agent and outcome (success, failure, circuit_open).",
        )
        for name, unit, description, read in _PER_AGENT:
            meter.create_observable_counter(
                name, callbacks=[functools.partial(self._observe_per_agent, read)], unit=unit, description=description
            )
        self._give_ups = meter.create_counter(
            "adk_retry.give_ups",
            unit="{call}",
            description="Calls whose retriable failure was not retried further (attempts, deadline, budget, ...).",
        )
        self._backoff = meter.create_histogram(
            "adk_retry.backoff_delay",
            unit="s",
            description="The wait scheduled before each retry.",
            explicit_bucket_boundaries_advisory=_DELAY_BUCKETS,
        )
        self._transitions = meter.create_counter(
            "adk_retry.breaker_transitions",
            unit="{transition}",
            description="Circuit breaker state changes, by model and new state.",
        )
        self._budget_denials = meter.create_counter(
            "adk_retry.budget_denials",
            unit="{retry}",
            description="Retries refused because the retry budget was empty.",
        )
        self._fallbacks = meter.create_counter(
            "adk_retry.fallbacks",
            unit="{call}",
            description="Calls moved to the next model of their chain, by model, target model and error class.",
        )
        self._hedges = meter.create_counter(
            "adk_retry.hedges",
            unit="{attempt}",
            description="Hedge attempts started beside a silent attempt, by model and the model hedged on.",
        )

    def __repr__(self) -> str:
        return (
            f"Metrics(meter_provider={self.meter_provider!r}, tracer_provider={self.tracer_provider!r}, "
            f"enabled={self.enabled})"
        )

    @property
    def meter_provider(self) -> MeterProvider | None:
        """The provider given to :func:`enable_metrics`; None for the global one (or once it is gone)."""
        return self._meter_provider()

    def use_tracer_provider(self, tracer_provider: TracerProvider | None) -> None:
        """Make the fallback spans with ``tracer_provider`` (None: no fallback spans)."""
        self.tracer_provider = tracer_provider
        self._tracer = (
            None
            if tracer_provider is None
            else otel_trace.get_tracer("adk_retry", _version(), tracer_provider=tracer_provider)
        )

    def enable(self) -> None:
        """Record again after :meth:`disable` (:func:`enable_metrics` calls it). Harmless twice."""
        self.enabled = True
        if self not in _active:
            _active.append(self)
        if _record_span not in global_hooks:
            global_hooks.append(_record_span)
        if self not in global_hooks:
            global_hooks.append(self)

    def disable(self) -> None:
        """Stop: remove the hook; the observable counters report nothing from now on.

        The OpenTelemetry API cannot delete an instrument, so they stay
        registered on their meter, silent. Calling it twice is harmless.
        """
        self.enabled = False
        while self in global_hooks:
            global_hooks.remove(self)
        if self in _active:
            _active.remove(self)
        if not _active:
            while _record_span in global_hooks:
                global_hooks.remove(_record_span)

    def __call__(self, event: RetryEvent) -> None:
        """Record one failure-path event (the hook entry point)."""
        if not self.enabled:
            return
        kind = event.kind
        if kind == "retry":
            attributes = _call_attributes(event)
            attributes[names.REASON] = "backoff" if event.reason in (None, "backoff") else "hint"
            self._backoff.record(event.delay or 0.0, attributes)
        elif kind == "give_up":
            attributes = _call_attributes(event)
            attributes[names.REASON] = give_up_reason(event.reason)
            attributes[names.HTTP_REQUEST_RESEND_COUNT] = max(event.attempt - 1, 0)
            self._give_ups.add(1, attributes)
        elif kind == "breaker_change":
            model = event.model or _UNKNOWN_MODEL
            self._transitions.add(
                1,
                {
                    names.GEN_AI_REQUEST_MODEL: model,
                    names.GEN_AI_PROVIDER_NAME: names.provider_name(event.model),
                    names.BREAKER_STATE: event.state or "unknown",
                },
            )
        elif kind == "budget_denied":
            self._budget_denials.add(1, _call_attributes(event))
        elif kind == "fallback" or kind == "hedge":
            attributes = _call_attributes(event)
            attributes[names.TO_MODEL] = event.to_model or _UNKNOWN_MODEL
            (self._fallbacks if kind == "fallback" else self._hedges).add(1, attributes)

    # -- observable counters: run only when a reader collects --------------------------------

    def _observe_calls(self, options: CallbackOptions) -> Iterable[Observation]:
        if not self.enabled:
            return []
        observations = []
        for agent, stats in _ledger.totals().items():
            for outcome, value in (
                ("success", stats.successes),
                ("failure", stats.failures - stats.breaker_rejections),
                ("circuit_open", stats.breaker_rejections),
            ):
                observations.append(
                    otel_metrics.Observation(value, {names.GEN_AI_AGENT_NAME: agent, names.OUTCOME: outcome})
                )
        return observations

    def _observe_per_agent(
        self, read: Callable[[RetryStats], float | None], options: CallbackOptions
    ) -> Iterable[Observation]:
        if not self.enabled:
            return []
        return [
            otel_metrics.Observation(value, {names.GEN_AI_AGENT_NAME: agent})
            for agent, stats in _ledger.totals().items()
            if (value := read(stats)) is not None
        ]


def _limited(value: float, stats: RetryStats) -> float | None:
    """A rate-limit figure, reported only for agents whose calls met a limiter."""
    return value if stats.rate_limit_waited or stats.rate_limit_rejections else None


_PER_AGENT: tuple[tuple[str, str, str, Callable[[RetryStats], float | None]], ...] = (
    (
        "adk_retry.attempts",
        "{attempt}",
        "Model call attempts made (first tries plus retries), by agent.",
        lambda s: s.attempts,
    ),
    ("adk_retry.retries", "{retry}", "Retries made (attempts after the first), by agent.", lambda s: s.retries),
    (
        "adk_retry.rate_limit.wait",
        "s",
        "Seconds calls waited for admission by the client-side rate limiter, by agent.",
        lambda s: _limited(s.rate_limit_waited, s),
    ),
    (
        "adk_retry.rate_limit.rejections",
        "{attempt}",
        "Attempts the rate limiter could not admit within the call's deadline, by agent.",
        lambda s: _limited(s.rate_limit_rejections, s),
    ),
)
"""The observable counters read per agent from the ledger: name, unit, description, the figure."""


_active: list[Metrics] = []


def enable_metrics(
    meter_provider: MeterProvider | None = None, tracer_provider: TracerProvider | None = None
) -> Metrics:
    """Record adk-retry's metrics and span events with OpenTelemetry; returns the :class:`Metrics`.

    Args:
        meter_provider: where the instruments live; None (the default) uses
            the global provider, through the API's proxy, so it also works
            when the application sets its ``MeterProvider`` later. Importing
            the first retry handler already does ``enable_metrics()``.
        tracer_provider: the attempts of a retried call are always added as
            events (``adk_retry.retry``, ``adk_retry.give_up``,
            ``adk_retry.success``; see :data:`SPAN_EVENTS`) to the current span
            when it is recording, whoever made it. When the current span is
            *not* recording but belongs to a sampled trace (typically: ADK's
            own spans are no-ops because no global ``TracerProvider`` is set,
            while the application traces with its own provider), each is
            recorded instead as a short span of the same name made by this
            provider, child of the current context, with the same attributes
            and event.

    There is one :class:`Metrics` per meter provider: calling it again with
    the same ``meter_provider`` returns the same object, enabled again if it
    was disabled, with the ``tracer_provider`` of this call. ``.disable()``
    undoes it.

    Example:
        >>> from opentelemetry.sdk.metrics import MeterProvider
        >>> from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        >>> reader = InMemoryMetricReader()
        >>> telemetry = enable_metrics(meter_provider=MeterProvider(metric_readers=[reader]))
        >>> # ... run agents; then reader.get_metrics_data() holds adk_retry.attempts, ...
        >>> telemetry.disable()
    """
    with _registry_lock:
        telemetry = _registered(meter_provider)
        if telemetry is None:
            telemetry = Metrics(meter_provider, tracer_provider)
            _register(meter_provider, telemetry)
        elif telemetry.tracer_provider is not tracer_provider:
            telemetry.use_tracer_provider(tracer_provider)
        telemetry.enable()
    return telemetry


_registry_lock = threading.Lock()
_for_global: list[Metrics] = []  # the one for the global provider (meter_provider=None), once made
_by_provider: weakref.WeakKeyDictionary[MeterProvider, Metrics] = weakref.WeakKeyDictionary()
_by_id: dict[int, tuple[MeterProvider, Metrics]] = {}  # providers that cannot be weakly referenced


def _registered(meter_provider: MeterProvider | None) -> Metrics | None:
    if meter_provider is None:
        return _for_global[0] if _for_global else None
    try:
        return _by_provider.get(meter_provider)
    except TypeError:
        entry = _by_id.get(id(meter_provider))
        return entry[1] if entry is not None else None


def _register(meter_provider: MeterProvider | None, telemetry: Metrics) -> None:
    if meter_provider is None:
        _for_global.append(telemetry)
        return
    try:
        _by_provider[meter_provider] = telemetry
    except TypeError:
        _by_id[id(meter_provider)] = (meter_provider, telemetry)  # kept alive, so its id stays its own


def _none() -> None:
    return None


def give_up_reason(reason: str | None) -> str:
    """The low-cardinality kind of a give-up reason, for a metric attribute.

    Example:
        >>> give_up_reason("deadline: 0.20s left, retry needs 1.00s")
        'deadline'
    """
    text = reason or ""
    for prefix, kind in _GIVE_UP_REASONS:
        if text.startswith(prefix):
            return kind
    return "other"


_GIVE_UP_REASONS = (
    ("attempts exhausted", "attempts_exhausted"),
    ("the matching rule", "rule_exhausted"),
    ("server asked to wait", "hint_too_long"),
    ("deadline", "deadline"),
    ("circuit open", "circuit_open"),
    ("retry budget", "budget_exhausted"),
)


def _call_attributes(event: RetryEvent) -> dict[str, AttributeValue]:
    """The attributes every call-level measurement carries: who, what, which failure."""
    return {
        names.GEN_AI_AGENT_NAME: event.agent,
        names.GEN_AI_REQUEST_MODEL: event.model or _UNKNOWN_MODEL,
        names.GEN_AI_PROVIDER_NAME: names.provider_name(event.model),
        names.ERROR_TYPE: names.error_type(event.error),
        names.ERROR_CLASS: event.error_class or _UNCLASSIFIED,
    }


def span_attributes(event: RetryEvent) -> Mapping[str, AttributeValue]:
    """The attributes of an attempt's span event: names and numbers, never an error message.

    Example:
        >>> from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
        >>> attributes = span_attributes(
        ...     RetryEvent("retry", agent="a", model="m", attempt=1, delay=0.5, error=OSError("secret")))
        >>> attributes[ERROR_TYPE], attributes["adk_retry.delay"], "secret" in str(attributes)
        ('OSError', 0.5, False)
    """
    attributes = _call_attributes(event)
    attributes[names.ATTEMPT] = event.attempt
    attributes[names.HTTP_REQUEST_RESEND_COUNT] = max(event.attempt - 1, 0)
    if event.kind == "retry":
        attributes[names.DELAY] = float(event.delay or 0.0)
        attributes[names.REASON] = event.reason or "backoff"
    elif event.kind == "give_up":
        attributes[names.REASON] = give_up_reason(event.reason)
    else:  # the attempt that answered: no error of its own
        del attributes[names.ERROR_TYPE], attributes[names.ERROR_CLASS]
    return attributes


def _record_span(event: RetryEvent) -> None:
    """The one hook (whatever the number of :class:`Metrics`) that records attempts on spans."""
    name = SPAN_EVENTS.get(event.kind)
    if name is None:
        return
    span = otel_trace.get_current_span()
    if span.is_recording():
        span.add_event(name, span_attributes(event))
        return
    context = span.get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return
    done: set[int] = set()
    for telemetry in _active:
        tracer = telemetry._tracer
        if tracer is None or id(telemetry.tracer_provider) in done:
            continue
        done.add(id(telemetry.tracer_provider))
        attributes = span_attributes(event)
        fallback = tracer.start_span(name, attributes=attributes)
        fallback.add_event(name, attributes)
        fallback.end()


def _enabled_by_environment() -> bool:
    return os.environ.get("ADK_RETRY_OTEL", "1").strip().lower() not in ("0", "false", "no", "off")


_instrumented = [False]


def instrument_on_first_use() -> None:
    """Enable the metrics on the global providers, once, when the first retry handler is made.

    Not at import: importing a library should not register instruments (in
    the spirit of stamina's instrumentation, set up on first use). The
    application only has to set its ``MeterProvider``, before or after, and
    ``ADK_RETRY_OTEL=0`` opts out. Costs a list read after the first call.
    """
    if _instrumented[0]:
        return
    _instrumented[0] = True
    if _enabled_by_environment():
        enable_metrics()
