"""Every public constructor refuses a bad argument where it is written, naming it.

A wrong argument accepted at construction surfaces later, at the first
failing model call, as retry silently off or as a ``TypeError`` in place of
the provider's error. Each row below is one bad argument: the exception
type it must raise at once, and a pattern its message must contain (the
argument's name, at least).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from adk_retry import (
    CircuitBreaker,
    ErrorRule,
    LogTemplates,
    RateLimit,
    RetryBudget,
    RetryHandler,
    RetryPlugin,
    RetryPolicy,
    create_retry_callbacks,
)
from adk_retry.contrib.ollama import OllamaOOMRecovery
from adk_retry.core._rules import RecoveryContext
from adk_retry.guards import MemoryStore
from adk_retry.testing import Fault, FaultServer


def sync_recover(error: BaseException, context: RecoveryContext) -> None:
    """A recovery hook written without ``async``: awaiting its None would fail at the first retry."""


async def async_recover(error: BaseException, context: RecoveryContext) -> None:
    """A recovery hook as it should be."""


async def async_hook(event: Any) -> None:
    """An async hook: hooks are called synchronously, so it would never run."""


def redis_client() -> Any:
    redis_asyncio = pytest.importorskip("redis.asyncio")
    return redis_asyncio.Redis(host="127.0.0.1", port=1)  # never connects: nothing is awaited


def redis_store(*args: Any, **kwargs: Any) -> Any:
    from adk_retry.guards._redis import RedisStore

    return RedisStore(*args, **kwargs)


Build = Callable[[], object]

BAD: list[tuple[str, Build, type[Exception], str]] = [
    # RetryPolicy
    ("policy-negative-retries", lambda: RetryPolicy(max_retries=-1), ValidationError, "max_retries"),
    ("policy-jitter", lambda: RetryPolicy(jitter=2), ValidationError, "jitter"),
    ("policy-max-below-base", lambda: RetryPolicy(base_delay=5, max_delay=1), ValidationError, "max_delay"),
    ("policy-preset", lambda: RetryPolicy(retry_on="sometimes"), ValidationError, "retry_on"),
    ("policy-predicate-arity", lambda: RetryPolicy(retry_on=lambda: True), ValidationError, "retry_on"),
    ("policy-hook-arity", lambda: RetryPolicy(hooks=(lambda: None,)), ValidationError, "hooks"),
    ("policy-async-hook", lambda: RetryPolicy(hooks=(async_hook,)), ValidationError, "hooks"),
    ("policy-timeout", lambda: RetryPolicy(timeout=0), ValidationError, "timeout"),
    ("policy-unknown-field", lambda: RetryPolicy(max_retry=3), ValidationError, "max_retry"),
    ("policy-store", lambda: RetryPolicy(store="redis"), ValidationError, "store"),
    # RetryBudget and CircuitBreaker
    ("budget-tokens", lambda: RetryBudget(max_tokens=0), ValidationError, "max_tokens"),
    ("budget-ratio", lambda: RetryBudget(token_ratio=2), ValidationError, "token_ratio"),
    ("budget-scope", lambda: RetryBudget(scope="galaxy"), ValidationError, "scope"),
    ("budget-empty-key", lambda: RetryBudget(key=""), ValidationError, "key"),
    ("breaker-threshold", lambda: CircuitBreaker(failure_threshold=0), ValidationError, "failure_threshold"),
    ("breaker-cooldown", lambda: CircuitBreaker(cooldown=0), ValidationError, "cooldown"),
    ("breaker-empty-key", lambda: CircuitBreaker(key=""), ValidationError, "key"),
    ("breaker-first-probe", lambda: CircuitBreaker(first_probe=0), ValidationError, "first_probe"),
    ("breaker-probe-jitter", lambda: CircuitBreaker(probe_jitter=1), ValidationError, "probe_jitter"),
    ("breaker-probe-jitter-nan", lambda: CircuitBreaker(probe_jitter=float("nan")), ValidationError, "probe_jitter"),
    ("breaker-probe-timeout", lambda: CircuitBreaker(probe_timeout=0), ValidationError, "probe_timeout"),
    ("breaker-max-wait", lambda: CircuitBreaker(max_wait=-1), ValidationError, "max_wait"),
    ("breaker-max-wait-inf", lambda: CircuitBreaker(max_wait=float("inf")), ValidationError, "max_wait"),
    # RateLimit
    ("limit-nothing", lambda: RateLimit(), ValidationError, "rpm, tpm, max_concurrency or adaptive"),
    ("limit-not-adaptive", lambda: RateLimit(adaptive=False), ValidationError, "rpm, tpm, max_concurrency"),
    ("limit-rpm", lambda: RateLimit(rpm=0), ValidationError, "rpm"),
    ("limit-rpm-nan", lambda: RateLimit(rpm=float("nan")), ValidationError, "rpm"),
    ("limit-rpm-text", lambda: RateLimit(rpm="lots"), ValidationError, "rpm"),
    ("limit-tpm", lambda: RateLimit(tpm=-1), ValidationError, "tpm"),
    ("limit-concurrency", lambda: RateLimit(max_concurrency=0), ValidationError, "max_concurrency"),
    ("limit-concurrency-fraction", lambda: RateLimit(max_concurrency=2.5), ValidationError, "max_concurrency"),
    ("limit-burst", lambda: RateLimit(rpm=60, burst=0.5), ValidationError, "burst"),
    ("limit-adaptive", lambda: RateLimit(adaptive=2), ValidationError, "adaptive"),
    ("limit-max-wait", lambda: RateLimit(rpm=60, max_wait=0), ValidationError, "max_wait"),
    ("limit-max-wait-inf", lambda: RateLimit(rpm=60, max_wait=float("inf")), ValidationError, "max_wait"),
    ("limit-lease", lambda: RateLimit(max_concurrency=1, lease=0), ValidationError, "lease"),
    ("limit-scope", lambda: RateLimit(rpm=60, scope="galaxy"), ValidationError, "scope"),
    ("limit-empty-key", lambda: RateLimit(rpm=60, key=""), ValidationError, "key"),
    ("limit-unknown-field", lambda: RateLimit(rps=1), ValidationError, "rps"),
    ("policy-rate-limit-type", lambda: RetryPolicy(rate_limit=60), ValidationError, "rate_limit"),
    ("policy-rate-limit-dict", lambda: RetryPolicy(rate_limit={"rpm": -1}), ValidationError, "rate_limit.rpm"),
    # RetryPolicy: hedging and fallbacks
    ("policy-hedge-after", lambda: RetryPolicy(hedge_after=0), ValidationError, "hedge_after"),
    ("policy-hedge-after-inf", lambda: RetryPolicy(hedge_after=float("inf")), ValidationError, "hedge_after"),
    ("policy-max-hedges", lambda: RetryPolicy(hedge_after=1, max_hedges=0), ValidationError, "max_hedges"),
    ("policy-max-hedges-alone", lambda: RetryPolicy(max_hedges=2), ValidationError, "max_hedges needs hedge_after"),
    ("policy-hedge-quantile", lambda: RetryPolicy(hedge_after=1, hedge_quantile=1), ValidationError, "hedge_quantile"),
    (
        "policy-hedge-quantile-nan",
        lambda: RetryPolicy(hedge_after=1, hedge_quantile=float("nan")),
        ValidationError,
        "hedge_quantile",
    ),
    ("policy-hedge-quantile-alone", lambda: RetryPolicy(hedge_quantile=0.9), ValidationError, "hedge_quantile needs"),
    ("policy-fallback-type", lambda: RetryPolicy(fallbacks=(5,)), ValidationError, "fallbacks"),
    ("policy-fallback-none", lambda: RetryPolicy(fallbacks=None), ValidationError, "fallbacks"),
    ("policy-fallback-empty-name", lambda: RetryPolicy(fallbacks=(" ",)), ValidationError, "fallbacks"),
    ("policy-fallback-on-class", lambda: RetryPolicy(fallback_on=("rate_limt",)), ValidationError, "fallback_on"),
    ("policy-fallback-on-none", lambda: RetryPolicy(fallback_on=None), ValidationError, "fallback_on"),
    ("policy-fallback-on-number", lambda: RetryPolicy(fallback_on=5), ValidationError, "fallback_on"),
    (
        "policy-fallback-on-unhashable",
        lambda: RetryPolicy(fallback_on=[["rate_limit"]]),
        ValidationError,
        "fallback_on",
    ),
    # ErrorRule
    ("rule-class", lambda: ErrorRule(match="hiccup"), ValidationError, "match"),
    ("rule-zero-arg-match", lambda: ErrorRule(match=lambda: True), ValidationError, "match"),
    ("rule-max-below-base", lambda: ErrorRule(match="timeout", base_delay=5, max_delay=1), ValidationError, "max_d"),
    ("rule-sync-recover", lambda: ErrorRule(match="timeout", recover=sync_recover), ValidationError, "recover"),
    ("rule-recover-arity", lambda: ErrorRule(match="timeout", recover=async_hook), ValidationError, "recover"),
    ("rule-multiplier", lambda: ErrorRule(match="timeout", backoff_multiplier=0.5), ValidationError, "multiplier"),
    # LogTemplates
    ("templates-unknown-field", lambda: LogTemplates(retrying=("%(agnet)s failed",)), ValidationError, "agnet"),
    ("templates-format-style", lambda: LogTemplates(gave_up=("{agent} gave up",)), ValidationError, "gave_up"),
    ("templates-not-in-this-line", lambda: LogTemplates(succeeded=("%(error)s",)), ValidationError, "succeeded"),
    ("templates-lone-percent", lambda: LogTemplates(hinted=("100% sure",)), ValidationError, "hinted"),
    ("templates-unnamed-conversion", lambda: LogTemplates(succeeded=("%(agent)s: %s",)), ValidationError, "succeeded"),
    ("templates-bad-conversion", lambda: LogTemplates(retrying=("%(agent)d",)), ValidationError, "retrying"),
    ("templates-one-string", lambda: LogTemplates(succeeded="done"), ValidationError, "succeeded"),
    # MemoryStore
    ("memory-store-argument", lambda: MemoryStore(100), TypeError, "MemoryStore"),  # type: ignore[call-arg]
    # RedisStore (its constructor's arguments only)
    ("redis-url-as-client", lambda: redis_store("redis://127.0.0.1:6379"), TypeError, "client.*from_url"),
    ("redis-ttl", lambda: redis_store(redis_client(), ttl=0), ValueError, "ttl"),
    ("redis-ttl-type", lambda: redis_store(redis_client(), ttl="1h"), TypeError, "ttl"),
    ("redis-recheck", lambda: redis_store(redis_client(), recheck_after=-1), ValueError, "recheck_after"),
    ("redis-prefix", lambda: redis_store(redis_client(), prefix=7), TypeError, "prefix"),
    ("redis-fallback", lambda: redis_store(redis_client(), fallback="memory"), TypeError, "fallback"),
    # RetryPlugin
    ("plugin-policy-field-keyword", lambda: RetryPlugin(max_retries=5), TypeError, "max_retries.*accepts policy"),
    ("plugin-unknown-dict-field", lambda: RetryPlugin({"max_retriess": 5}), ValidationError, "max_retriess"),
    ("plugin-bad-dict-value", lambda: RetryPlugin({"jitter": 3}), ValidationError, "jitter"),
    ("plugin-unknown-preset", lambda: RetryPlugin("transiant"), ValueError, "transiant.*transient"),
    ("plugin-policy-type", lambda: RetryPlugin(5), TypeError, "policy"),  # type: ignore[arg-type]
    ("plugin-sleep-number", lambda: RetryPlugin(sleep=5), TypeError, "sleep"),
    ("plugin-sync-sleep", lambda: RetryPlugin(sleep=time.sleep), TypeError, "sleep.*async"),
    ("plugin-clock", lambda: RetryPlugin(clock=5), TypeError, "clock"),
    ("plugin-random", lambda: RetryPlugin(random=0.5), TypeError, "random"),
    ("plugin-wall-clock", lambda: RetryPlugin(wall_clock="now"), TypeError, "wall_clock"),
    ("plugin-name", lambda: RetryPlugin(name=""), TypeError, "name"),
    # RetryHandler
    ("handler-preset", lambda: RetryHandler("transiant"), ValueError, "transiant"),
    ("handler-policy-type", lambda: RetryHandler(3), TypeError, "policy"),  # type: ignore[arg-type]
    ("handler-sleep", lambda: RetryHandler(sleep=5), TypeError, "sleep"),  # type: ignore[arg-type]
    ("handler-sync-sleep", lambda: RetryHandler(sleep=time.sleep), TypeError, "sleep"),
    ("handler-clock", lambda: RetryHandler(clock=5), TypeError, "clock"),  # type: ignore[arg-type]
    ("handler-random-arity", lambda: RetryHandler(random=lambda x: x), TypeError, "random"),
    ("handler-agent-name", lambda: RetryHandler(agent_name=5), TypeError, "agent_name"),  # type: ignore[arg-type]
    ("handler-unknown-keyword", lambda: RetryHandler(max_retries=5), TypeError, "max_retries"),  # type: ignore[call-arg]
    # create_retry_callbacks
    ("callbacks-retries", lambda: create_retry_callbacks("a", max_retries=-1), ValidationError, "max_retries"),
    ("callbacks-unknown-field", lambda: create_retry_callbacks("a", jiter=0.1), ValidationError, "jiter"),
    ("callbacks-preset", lambda: create_retry_callbacks("a", policy="nope"), ValueError, "nope"),
    ("callbacks-agent-name", lambda: create_retry_callbacks(""), TypeError, "agent_name"),
    # OllamaOOMRecovery
    ("ollama-api-base-type", lambda: OllamaOOMRecovery(11434), TypeError, "api_base"),  # type: ignore[arg-type]
    ("ollama-api-base-empty", lambda: OllamaOOMRecovery(""), ValueError, "api_base"),
    ("ollama-fallback-type", lambda: OllamaOOMRecovery(fallback_model=1), TypeError, "fallback_model"),  # type: ignore[arg-type]
    ("ollama-settle-type", lambda: OllamaOOMRecovery(settle_timeout="10s"), TypeError, "settle_timeout"),  # type: ignore[arg-type]
    ("ollama-settle-inf", lambda: OllamaOOMRecovery(settle_timeout=float("inf")), ValueError, "settle_timeout"),
    ("ollama-poll", lambda: OllamaOOMRecovery(poll_interval=0), ValueError, "poll_interval"),
    ("ollama-session-factory", lambda: OllamaOOMRecovery(session_factory=5), TypeError, "session_factory"),  # type: ignore[arg-type]
    ("ollama-unload-flag", lambda: OllamaOOMRecovery(unload_others="no"), TypeError, "unload_others"),  # type: ignore[arg-type]
    # Fault and FaultServer
    ("fault-kind", lambda: Fault("bogus"), ValueError, "kind"),  # type: ignore[arg-type]
    ("fault-status", lambda: Fault.http_error(99), ValueError, "status"),
    ("fault-delay", lambda: Fault.delay(-1), ValueError, "seconds"),
    ("fault-chunks", lambda: Fault.ok(chunks=-1), ValueError, "chunks"),
    ("fault-reply-fn", lambda: Fault.reply(5), TypeError, "fn"),  # type: ignore[arg-type]
    ("fault-then", lambda: Fault.delay(1, then="ok"), TypeError, "then"),  # type: ignore[arg-type]
    ("server-fault", lambda: FaultServer("ok"), TypeError, "Fault"),  # type: ignore[arg-type]
    ("server-default", lambda: FaultServer(default="ok"), TypeError, "Fault"),  # type: ignore[arg-type]
    ("server-model-name", lambda: FaultServer(model_name=""), TypeError, "model_name"),
]


@pytest.mark.parametrize(("build", "error", "names"), [row[1:] for row in BAD], ids=[row[0] for row in BAD])
def test_a_bad_argument_fails_at_construction_naming_it(build: Build, error: type[Exception], names: str) -> None:
    with pytest.raises(error, match=names):
        build()


GOOD: list[tuple[str, Build]] = [
    ("plugin-no-arguments", lambda: RetryPlugin()),
    ("rule-async-recover", lambda: ErrorRule(match="timeout", recover=async_recover)),
    ("rule-ollama-recover", lambda: ErrorRule(match="out_of_memory", recover=OllamaOOMRecovery())),
    ("rule-builtin-predicate", lambda: ErrorRule(match=callable)),  # a builtin: signature checked where readable
    ("rule-partial-recover", lambda: ErrorRule(match="timeout", recover=functools.partial(async_recover))),
    ("rule-max-equals-base", lambda: ErrorRule(match="timeout", base_delay=2, max_delay=2)),
    ("policy-hook-method", lambda: RetryPolicy(hooks=([].append,))),
    ("templates-escaped-percent", lambda: LogTemplates(succeeded=("100%% done by %(agent)s",))),
    ("templates-brace-not-a-field", lambda: LogTemplates(succeeded=("{ %(agent)s }",))),
    ("handler-async-sleep", lambda: RetryHandler(sleep=asyncio.sleep, clock=time.monotonic, wall_clock=time.time)),
    ("fault-every-classmethod", lambda: [Fault.ok(), Fault.empty_choices(), Fault.stream_cut(0), Fault.delay(0)]),
]


@pytest.mark.parametrize("build", [row[1] for row in GOOD], ids=[row[0] for row in GOOD])
def test_good_arguments_still_construct(build: Build) -> None:
    build()


@pytest.mark.parametrize(
    ("shorthand", "expected"),
    [
        ("transient", RetryPolicy.transient()),
        ("adk_seed", RetryPolicy()),
        ("swarm_sdk", RetryPolicy.swarm_sdk()),
        ({"max_retries": 5}, RetryPolicy(max_retries=5)),
        ({"retry_on": "transient", "base_delay": 0.5}, RetryPolicy(retry_on="transient", base_delay=0.5)),
        (None, RetryPolicy()),
    ],
    ids=["transient", "adk_seed", "swarm_sdk", "dict", "dict-two-fields", "none"],
)
def test_a_preset_name_or_a_dict_is_the_policy_it_names(shorthand: Any, expected: RetryPolicy) -> None:
    assert RetryPlugin(shorthand).policy == expected
    assert RetryHandler(shorthand).policy == expected
    assert create_retry_callbacks("a", policy=shorthand)["retry_handler"].policy == expected


def test_the_codeworm_preset_name_builds_its_recovery_rule() -> None:
    policy = RetryPlugin("codeworm").policy
    assert policy.max_attempts == 3
    assert isinstance(policy.rules[0].recover, OllamaOOMRecovery)


def test_the_plugins_handlers_get_the_injected_side_effects() -> None:
    async def sleep(seconds: float) -> None: ...

    plugin = RetryPlugin("transient", sleep=sleep, random=lambda: 0.5)
    handler = plugin.handler("agent")
    assert handler.sleep is sleep
    assert handler.random is not None
    assert handler.random() == 0.5
    assert handler.policy.retry_on == "transient"
