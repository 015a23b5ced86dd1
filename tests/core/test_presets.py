"""Each preset reproduces the seed it is named for."""

from __future__ import annotations

import asyncio
import logging

import pytest

from adk_retry import RetryHandler, RetryPolicy
from adk_retry.core._rules import RecoveryContext
from tests.conftest import messages


def run(policy: RetryPolicy, outcomes: list, *, delays: list[float]) -> object:
    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    async def call():
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return asyncio.run(RetryHandler(policy, agent_name="seeded", sleep=sleep, random=lambda: 0.5)(call))


def test_adk_seed_schedule_and_selectivity():
    delays: list[float] = []
    policy = RetryPolicy.adk_seed()
    assert run(policy, [ValueError("No message in response")] * 3 + ["ok"], delays=delays) == "ok"
    assert delays == [1.0, 2.0, 4.0]
    with pytest.raises(TimeoutError):
        run(policy, [TimeoutError("slow"), "ok"], delays=delays)


def test_codeworm_linear_backoff_on_timeouts_and_connections_last_error_raised():
    delays: list[float] = []
    errors = [TimeoutError("slow"), ConnectionResetError("reset"), TimeoutError("slow again")]
    with pytest.raises(TimeoutError, match="slow again") as raised:
        run(RetryPolicy.codeworm(), list(errors), delays=delays)
    assert raised.value is errors[-1]
    assert delays == [2.0, 4.0], "retry_delay * (attempt + 1), no sleep after the last attempt"
    with pytest.raises(ValueError, match="bad input"):
        run(RetryPolicy.codeworm(), [ValueError("bad input"), "ok"], delays=[])


def test_codeworm_recovers_from_out_of_memory_without_waiting():
    import litellm

    recovered: list[int] = []

    async def recover(error: BaseException, context: RecoveryContext) -> None:
        recovered.append(context.attempt)

    oom = litellm.APIConnectionError(
        message="model requires more system memory (9.1 GiB) than is available (4.0 GiB)",
        llm_provider="ollama",
        model="ollama/big",
    )
    delays: list[float] = []
    assert run(RetryPolicy.codeworm(oom_recovery=recover), [oom, "ok"], delays=delays) == "ok"
    assert recovered == [1]
    assert delays == [0.0]


def test_codeworm_unloads_ollama_models_by_default():
    from adk_retry.contrib.ollama import OllamaOOMRecovery

    (rule,) = RetryPolicy.codeworm().rules
    assert rule.match == "out_of_memory"
    assert isinstance(rule.recover, OllamaOOMRecovery)
    assert rule.recover.unload_self


def test_swarm_sdk_retries_everything_ten_times_ten_seconds_with_its_log_lines(caplog):
    caplog.set_level(logging.INFO, logger="adk_retry")
    delays: list[float] = []
    outcomes = [ConnectionError("Connection failed")] * 10
    with pytest.raises(ConnectionError):
        run(RetryPolicy.swarm_sdk(), outcomes, delays=delays)
    assert delays == [10.0] * 9
    lines = messages(caplog)
    assert lines[0] == "LLM call failed (attempt 1/10): ConnectionError: Connection failed"
    assert lines[1] == "Retrying in 10 seconds..."
    assert lines[-1] == "LLM call failed after 10 attempts: ConnectionError: Connection failed"
    assert not any("succeeded" in line for line in lines)
