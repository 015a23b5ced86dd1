"""Section: what adk-retry itself adds to each failed attempt, against what litellm spends on it.

A retry made above litellm re-runs litellm's whole call and error path. This
section measures, side by side in one run, the client CPU of one failed
``LiteLlm`` call (a 503 from the loopback fault server, retries beneath off)
and the parts adk-retry adds to each failed attempt: reading the failure
(classification, hint, rule), describing it for the log line (first line,
redaction, bound), and writing the retry record through a real handler. The
retry wait itself is skipped (``no_waits``).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from adk_retry import RetryHandler, RetryPolicy
from adk_retry.observability._log import describe
from adk_retry.testing import Fault, FaultServer, no_waits
from bench.tables import Section, fmt

__all__ = ["FailurePath", "measure_failure_path"]


@dataclass(frozen=True)
class FailurePath:
    """The section and its headline figure."""

    section: Section
    share: float
    """adk-retry's CPU per failed attempt, as a fraction of litellm's."""


async def _best_us_async(run: Callable[[], Awaitable[object]], iterations: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(iterations):
            await run()
        best = min(best, (time.process_time() - started) / iterations * 1e6)
    return best


def _best_us(run: Callable[[], object], iterations: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(iterations):
            run()
        best = min(best, (time.process_time() - started) / iterations * 1e6)
    return best


async def _litellm_error(server: FaultServer) -> tuple[BaseException, float]:
    """One real 503 through LiteLlm (the exception litellm builds) and its client CPU in µs (best of a few)."""
    from google.adk.models.lite_llm import LiteLlm
    from google.adk.models.llm_request import LlmRequest
    from google.genai import types

    model = LiteLlm(model="openai/bench-failure", api_base=server.url, api_key="sk-bench", num_retries=0, max_retries=0)
    request = LlmRequest(contents=[types.Content(role="user", parts=[types.Part(text="hello")])])
    best, error = float("inf"), None
    for _ in range(12):
        server.push(Fault.http_error(503))
        started = time.process_time()
        try:
            async for _ in model.generate_content_async(request):
                pass
        except Exception as exc:
            error = exc
        best = min(best, (time.process_time() - started) * 1e6)
    assert error is not None
    return error, best


async def measure_failure_path(*, iterations: int, rounds: int) -> FailurePath:
    """Measure the failed attempt's parts side by side."""
    async with FaultServer() as server:
        error, litellm_us = await _litellm_error(server)
    policy = RetryPolicy.transient()
    plan = policy.plan
    stream = io.StringIO()
    handler_log = logging.StreamHandler(stream)
    logger = logging.getLogger("adk_retry")
    previous_level, previous_propagate = logger.level, logger.propagate
    logger.addHandler(handler_log)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        read_us = _best_us(lambda: plan.failure(error), iterations, rounds)
        describe_us = _best_us(lambda: describe(error), iterations, rounds)

        async def failing_then_ok() -> None:
            handler = RetryHandler(policy, agent_name="bench")
            answers = iter([error, None])

            async def call() -> None:
                answer = next(answers)
                if answer is not None:
                    raise answer

            await handler(call)

        async def ok() -> None:
            async def call() -> None:
                return None

            await RetryHandler(policy, agent_name="bench")(call)

        small = max(1, iterations // 20)
        with no_waits():
            retry_us = await _best_us_async(failing_then_ok, small, rounds) - await _best_us_async(ok, small, rounds)
    finally:
        logger.removeHandler(handler_log)
        logger.setLevel(previous_level)
        logger.propagate = previous_propagate
    share = retry_us / litellm_us if litellm_us > 0 else float("nan")
    section = Section(
        "failure-path",
        "Failure path: adk-retry's own cost per failed attempt",
        "Client CPU (`time.process_time`, best of the rounds; the loopback server's thread included in "
        "litellm's figure, so it is an upper bound). The error is the `ServiceUnavailableError` litellm "
        "raised for a real 503. adk-retry's parts run with a real log handler at WARNING, so the retry "
        "record is formatted and redacted; the wait is skipped.",
        ("part", "µs per failed attempt", "share of litellm's failed call"),
    )
    for label, value in (
        ("litellm: one failed `LiteLlm` call (503, retries beneath off)", litellm_us),
        ("adk-retry: read the failure (class, hint, rule)", read_us),
        ("adk-retry: describe it for the log (first line, redaction, bound)", describe_us),
        ("adk-retry: the whole retry decision, log record and counting", retry_us),
    ):
        section.rows.append((label, fmt(value, 1), f"{value / litellm_us * 100:.1f} %" if litellm_us else "n/a"))
    section.notes.append(
        f"adk-retry adds **{retry_us:.0f} µs** to a failed attempt, **{share * 100:.1f} %** of the "
        f"{litellm_us / 1000:.1f} ms litellm spends on it: a retry's cost is litellm's."
    )
    return FailurePath(section, share)
