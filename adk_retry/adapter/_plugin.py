"""``RetryPlugin``: retry for every LLM agent of an app, with no change to the agents.

``App(..., plugins=[RetryPlugin(policy)])`` (``Runner(plugins=...)`` works too; ADK 2.13 deprecates it).

How it works, and why it is safe with shared models: a plugin's
before-model callback runs before ADK looks the agent's model up (2.3 and
2.13). There the plugin makes sure the model carries adk-retry's wrapper and
opens the call's state with *this plugin's* handler for the calling agent.
The wrapper retries only when it finds such a state (or an agent registered
with :func:`~adk_retry.add_retry_capabilities_to_agent`), so the same model
object called from another runner, without the plugin, behaves as before.

- Sub-agents, agents with a model name string or an inherited model, and
  agents created after the runner are all covered, because the work happens
  per call, not at start-up.
- An agent that already has retry of its own is left to it: never two loops.
- ``AgentTool`` runs its agent with the parent's plugins only with
  ``include_plugins=True`` (ADK's default). With ``include_plugins=False``
  give that agent retry itself (``add_retry_capabilities_to_agent``).
- Callbacks never raise: ADK turns a plugin's exception into a
  ``RuntimeError`` that ends the run, so a failure here is logged and the
  call goes on without retry.
- A policy that retries HTTP errors turns off the retry layers beneath the
  model (see :mod:`adk_retry.adapter._layers`) on the model object itself, so a
  runner without the plugin that shares that object meets it without those
  layers until ``close()`` puts them back.
- ``await plugin.close()`` (the runner calls it) undoes what the plugin did.
- The plugin holds the models it wrapped and the agents it pinned weakly: a
  long-lived runner whose agents get a new model every turn does not keep
  the old ones alive. ``close()`` undoes what is still alive.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Never

from google.adk.plugins.base_plugin import BasePlugin

from adk_retry.adapter._attach import attach, detach
from adk_retry.adapter._call_state import CallState, current_call
from adk_retry.adapter._callbacks import report_call
from adk_retry.core import _clock as clocks
from adk_retry.core._checks import require_timing
from adk_retry.core._policy import PolicyLike, RetryPolicy, as_policy
from adk_retry.engine._loop import RetryHandler
from adk_retry.observability._log import logger
from adk_retry.observability._stats import RetryStats

if TYPE_CHECKING:
    from google.adk.agents.callback_context import CallbackContext
    from google.adk.agents.llm_agent import LlmAgent
    from google.adk.models.base_llm import BaseLlm
    from google.adk.models.llm_request import LlmRequest
    from google.adk.models.llm_response import LlmResponse

__all__ = ["RetryPlugin"]

_HANDLER_OPTIONS = ("sleep", "clock", "random", "wall_clock")


@dataclass(slots=True)
class _Pin:
    """A model the plugin pinned on an agent, and the value it replaced (a model name)."""

    agent: weakref.ref[LlmAgent]
    original: Any
    model: weakref.ref[BaseLlm]


class RetryPlugin(BasePlugin):
    """An ADK plugin that gives every LLM agent of the app retry.

    Args:
        policy: the policy for every agent: a :class:`~adk_retry.RetryPolicy`,
            a preset name (``"adk_seed"``, ``"transient"``, ``"codeworm"``,
            ``"swarm_sdk"``), a dict of policy fields (``{"max_retries": 5}``,
            validated as ``RetryPolicy(**fields)``), or None for ``RetryPolicy()``.
        name: the plugin's name in ADK.
        sleep, clock, random, wall_clock: passed to each
            :class:`~adk_retry.RetryHandler` (see there).

    Every argument is checked here: a policy field given as a keyword
    (``RetryPlugin(max_retries=5)``) or any other unknown keyword is a
    ``TypeError``, a non-callable ``sleep``/``clock``/... too, and a bad
    policy a ``ValidationError`` or ``ValueError``. Nothing is left to fail,
    or to turn retry off silently, at the first model call.

    Example:
        >>> from google.adk.agents import LlmAgent
        >>> from google.adk.apps import App
        >>> from google.adk.runners import InMemoryRunner
        >>> from adk_retry import RetryPlugin, RetryPolicy
        >>> agent = LlmAgent(name="root", model="openai/gpt-4o-mini")
        >>> app = App(name="demo", root_agent=agent, plugins=[RetryPlugin(RetryPolicy(max_retries=5))])
        >>> runner = InMemoryRunner(app=app)
    """

    def __init__(
        self,
        policy: PolicyLike = None,
        *,
        name: str = "adk_retry",
        sleep: clocks.Sleep | None = None,
        clock: clocks.Clock | None = None,
        random: clocks.Random | None = None,
        wall_clock: clocks.Clock | None = None,
        **unknown: Never,
    ) -> None:
        if unknown:
            raise TypeError(_unknown_options(unknown))
        if not isinstance(name, str) or not name:
            raise TypeError(f"RetryPlugin: name must be a non-empty string, got {name!r}")
        require_timing("RetryPlugin", sleep=sleep, clock=clock, random=random, wall_clock=wall_clock)
        super().__init__(name=name)
        self.policy = as_policy(policy, owner="RetryPlugin")
        self._handler_options: dict[str, Any] = {
            "sleep": sleep,
            "clock": clock,
            "random": random,
            "wall_clock": wall_clock,
        }
        self._handlers: dict[str, RetryHandler] = {}
        # Weak: what close() must undo on a model or agent that is gone is gone with it.
        self._models: weakref.WeakValueDictionary[int, BaseLlm] = weakref.WeakValueDictionary()
        self._pinned: dict[int, _Pin] = {}

    def handler(self, agent_name: str) -> RetryHandler:
        """The handler this plugin uses for ``agent_name`` (made on first use)."""
        handler = self._handlers.get(agent_name)
        if handler is None:
            handler = self._handlers[agent_name] = RetryHandler(
                self.policy, agent_name=agent_name, **self._handler_options
            )
        return handler

    @property
    def stats(self) -> dict[str, RetryStats]:
        """Statistics per agent name, for the agents this plugin has run."""
        return {name: handler.stats for name, handler in self._handlers.items()}

    async def before_model_callback(
        self, *, callback_context: CallbackContext, llm_request: LlmRequest
    ) -> LlmResponse | None:
        """Wrap the calling agent's model if needed and open this call's state.

        An agent with retry of its own is left to it.
        """
        try:
            from google.adk.agents.llm_agent import LlmAgent

            state = current_call.get()
            if (
                state is not None
                and not state.taken
                and isinstance(state.owner, RetryPlugin)
                and state.owner is not self
            ):
                # Another RetryPlugin earlier in the app's plugin list (an App's own, then
                # --extra_plugins) already opened this call: the first one wins, never two policies.
                return None
            agent = callback_context._invocation_context.agent
            if not isinstance(agent, LlmAgent) or agent.__dict__.get("_retry_handler") is not None:
                return None
            handler = self.handler(agent.name)
            attached = attach(agent, handler, at_call=True)
            if attached is None:
                return None  # ADK's default model: not ours to pin
            if attached.pinned:
                self._remember_pin(agent, attached.unpinned, attached.model)
            self._models[id(attached.model)] = attached.model
            current_call.set(CallState(agent.name, handler, owner=self, context=callback_context))
        except Exception:  # never end the user's run because of the retry layer
            logger.warning("RetryPlugin could not enable retry for this model call", exc_info=True)
        return None

    async def after_model_callback(
        self, *, callback_context: CallbackContext, llm_response: LlmResponse
    ) -> LlmResponse | None:
        """Log the outcome once per model call."""
        try:
            report_call(self, llm_response)
        except Exception:
            logger.warning("RetryPlugin could not report on this model call", exc_info=True)
        return None

    def _remember_pin(self, agent: LlmAgent, unpinned: Any, model: BaseLlm) -> None:
        """``attach`` put ``model`` on ``agent`` over ``unpinned``: remember it, for :meth:`close`."""
        key = id(agent)
        pins = self._pinned
        # The entry goes when the agent does, so a new agent at the same id starts afresh.
        ref = weakref.ref(agent, lambda _: pins.pop(key, None))
        # A later pin replaces a value the user set since (a new model name): that is what to restore.
        pins[key] = _Pin(ref, unpinned, weakref.ref(model))

    async def close(self) -> None:
        """Undo what this plugin did: unwrap the models no one else uses, unpin agents."""
        for model in list(self._models.values()):
            detach(model, self._handlers.values())
        self._models.clear()
        for pin in list(self._pinned.values()):
            agent = pin.agent()
            # Only where our model is still in place: a model the user set since stays.
            if agent is not None and agent.model is pin.model():
                agent.model = pin.original
        self._pinned.clear()


def _unknown_options(unknown: dict[str, Any]) -> str:
    """The message for keywords RetryPlugin does not take; policy fields get a pointer to the policy."""
    names = ", ".join(sorted(unknown))
    accepted = ", ".join(("policy", "name", *_HANDLER_OPTIONS))
    message = f"RetryPlugin got unexpected keyword argument(s) {names}; it accepts {accepted}"
    fields = {key: value for key, value in unknown.items() if key in RetryPolicy.model_fields}
    if fields:
        message += (
            f". {', '.join(sorted(fields))} belong(s) to the policy: "
            f"RetryPlugin(RetryPolicy({', '.join(f'{k}={v!r}' for k, v in fields.items())})) "
            f"or RetryPlugin({fields!r})"
        )
    return message
