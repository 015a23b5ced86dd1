"""``create_retry_callbacks``: the seed's handler plus before/after-model callbacks.

The callbacks keep per-call state (how many attempts this model call took)
and write the "succeeded on attempt N" line once per call, at its first
non-partial response. They never alter the flow: both return None.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from adk_retry.adapter._call_state import CallState, current_call
from adk_retry.core._policy import PolicyLike, RetryPolicy, as_policy
from adk_retry.engine._loop import RetryHandler, log_success
from adk_retry.observability._log import logger

__all__ = ["RetryCallbacks", "create_retry_callbacks", "report_call"]

RetryCallbacks = dict[str, Any]
"""``{"retry_handler": RetryHandler, "before_model": callable, "after_model": callable}``."""

_SEED_ARGUMENTS = ("max_retries", "base_delay", "max_delay", "backoff_multiplier")


def create_retry_callbacks(
    agent_name: str,
    max_retries: int | None = None,
    base_delay: float | None = None,
    max_delay: float | None = None,
    backoff_multiplier: float | None = None,
    *,
    policy: PolicyLike = None,
    **more_policy: Any,
) -> RetryCallbacks:
    """Build a retry handler and the two model callbacks for one agent.

    Returns a dict with exactly the keys ``"retry_handler"``,
    ``"before_model"`` and ``"after_model"``. The seed's four arguments
    default to the seed's values (3 retries, 1.0 s, 8.0 s, multiplier 2.0); any other
    :class:`~adk_retry.RetryPolicy` field can be passed by name
    (``jitter=0.1``, ``retry_on="transient"``, ...), or a whole ``policy``
    (a ``RetryPolicy``, a preset name or a dict, as for ``RetryPlugin``);
    arguments given explicitly override the policy's fields. A name that is
    not a policy field fails here, as a ``ValidationError`` naming it.

    Example:
        >>> from google.adk.agents import Agent
        >>> from google.adk.models.lite_llm import LiteLlm
        >>> from adk_retry import add_retry_capabilities_to_agent
        >>> callbacks = create_retry_callbacks("my_agent", max_retries=3)
        >>> agent = Agent(
        ...     name="my_agent",
        ...     model=LiteLlm(model="openai/gpt-4o-mini", api_key="k"),
        ...     before_model_callback=[callbacks["before_model"]],
        ...     after_model_callback=[callbacks["after_model"]],
        ... )
        >>> agent = add_retry_capabilities_to_agent(agent, callbacks["retry_handler"])
    """
    if not isinstance(agent_name, str) or not agent_name:
        raise TypeError(f"create_retry_callbacks: agent_name must be a non-empty string, got {agent_name!r}")
    explicit = {
        name: value
        for name, value in zip(_SEED_ARGUMENTS, (max_retries, base_delay, max_delay, backoff_multiplier), strict=True)
        if value is not None
    }
    base = as_policy(policy, owner="create_retry_callbacks") if policy is not None else None
    fields = {**(dict(base) if base is not None else {}), **explicit, **more_policy}
    retry_policy = RetryPolicy(**fields)
    handler = RetryHandler(retry_policy, agent_name=agent_name)
    logger.info(
        "[%s] Creating retry callbacks with max_retries=%d, base_delay=%.1fs, max_delay=%.1fs",
        agent_name,
        retry_policy.max_retries,
        retry_policy.base_delay,
        retry_policy.max_delay,
        extra={"agent": agent_name},
    )
    return {
        "retry_handler": handler,
        "before_model": _before_model(agent_name, handler),
        "after_model": _after_model(handler),
    }


def report_call(owner: object, llm_response: Any) -> None:
    """Log the outcome of ``owner``'s current call once, at its first non-partial response."""
    state = current_call.get()
    if state is None or state.owner is not owner or state.reported or llm_response.partial:
        return
    state.reported = True
    if state.attempts > 1 and logger.isEnabledFor(logging.INFO):
        log_success(state.handler, state.agent, state.attempts, state.model, state)


def _before_model(agent_name: str, handler: RetryHandler) -> Callable[[Any, Any], None]:
    def before_model(callback_context: Any, llm_request: Any) -> None:
        """Open the per-call state of this model call."""
        current_call.set(CallState(agent_name, handler, owner=handler, context=callback_context))

    return before_model


def _after_model(handler: RetryHandler) -> Callable[[Any, Any], None]:
    def after_model(callback_context: Any, llm_response: Any) -> None:
        """Log the outcome once, at the call's first non-partial response."""
        report_call(handler, llm_response)

    return after_model
