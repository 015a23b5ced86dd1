"""Per-error rules: own backoff, own limit, recovery hooks."""

from __future__ import annotations

import pytest
from google.adk.agents import LlmAgent

from adk_retry import RetryHandler, RetryPolicy, add_retry_capabilities_to_agent
from adk_retry.core._rules import ErrorRule, RecoveryContext
from adk_retry.testing import Fault, no_waits
from adk_retry.testing.turns import run_turn
from tests.conftest import OUTAGE


def test_an_unknown_error_class_is_refused_at_configuration():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="match"):
        ErrorRule(match="rate_limited")


@pytest.mark.e2e
async def test_each_error_class_gets_its_own_schedule(server, make_model):
    policy = RetryPolicy(
        retry_on="transient",
        jitter=0.0,
        max_retries=5,
        rules=(
            ErrorRule(match="server_error", backoff="fixed", base_delay=0.25),
            ErrorRule(match="empty_response", backoff="linear", base_delay=2.0, max_delay=60.0),
        ),
    )
    agent = LlmAgent(name="ruled", model=make_model())
    handler = RetryHandler(policy, agent_name="ruled")
    add_retry_capabilities_to_agent(agent, handler)
    server.push(Fault.http_error(503), Fault.empty_choices(), Fault.http_error(502), Fault.ok("done"))
    delays: list[float] = []
    handler.sleep = _recording(delays)
    turn = await run_turn(agent)
    assert turn.text == "done"
    # attempt 1 (503): fixed 0.25; attempt 2 (empty): linear 2 * 2; attempt 3 (502): fixed 0.25
    assert delays == [0.25, 4.0, 0.25]


@pytest.mark.e2e
async def test_a_rule_limits_its_own_retries(server, make_model):
    policy = RetryPolicy(retry_on="transient", rules=(ErrorRule(match="server_error", max_retries=1),))
    agent = LlmAgent(name="ruled", model=make_model())
    add_retry_capabilities_to_agent(agent, RetryHandler(policy, agent_name="ruled"))
    server.push(*Fault.http_error(503).times(3))
    with no_waits(), pytest.raises(Exception, match=OUTAGE):
        await run_turn(agent)
    assert len(server.requests) == 2


@pytest.mark.e2e
async def test_the_recovery_hook_runs_before_the_retry_and_may_change_the_request(server, make_model):
    seen: list[tuple[str, int]] = []

    async def recover(error: BaseException, context: RecoveryContext) -> None:
        seen.append((type(error).__name__, context.attempt))
        assert context.llm_request is not None
        context.llm_request.model = "openai/smaller-model"

    policy = RetryPolicy(retry_on="transient", rules=(ErrorRule(match="server_error", recover=recover),))
    agent = LlmAgent(name="recovering", model=make_model())
    add_retry_capabilities_to_agent(agent, RetryHandler(policy, agent_name="recovering"))
    server.push(Fault.http_error(500), Fault.ok("recovered"))
    with no_waits():
        turn = await run_turn(agent)
    assert turn.text == "recovered"
    assert seen == [("InternalServerError", 1)]
    assert [body["model"] for body in server.requests] == ["fault-model", "smaller-model"]


def _recording(delays: list[float]):
    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    return sleep
