"""Run one conversational turn through a real ADK ``Runner``.

A small convenience for tests, examples and the demo, so each of them does
not rebuild the session boilerplate.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.adk.agents.base_agent import BaseAgent
    from google.adk.events.event import Event
    from google.adk.models.lite_llm import LiteLlm
    from google.adk.plugins.base_plugin import BasePlugin
    from google.adk.runners import Runner

    from adk_retry.testing.faults import Fault

__all__ = ["Turn", "example_model", "run_turn", "run_turn_on"]


@dataclass
class Turn:
    """What one turn produced.

    Attributes:
        events: every event the runner yielded, partial ones included.
        text: the text of the final (non-partial) model events, joined.
    """

    events: list[Event]
    text: str

    @property
    def function_calls(self) -> list[Any]:
        """The function calls the model made during the turn."""
        return [call for event in self.events for call in event.get_function_calls()]


async def run_turn(
    agent: BaseAgent,
    message: str = "hello",
    *,
    streaming: bool = False,
    plugins: Sequence[BasePlugin] = (),
    app_name: str = "adk_retry_app",
    user_id: str = "user",
) -> Turn:
    """Send ``message`` to ``agent`` in a fresh in-memory session and collect the turn.

    Example:
        >>> # turn = await run_turn(agent, "list the files", streaming=True)
        >>> # turn.text
    """
    from google.adk.apps import App
    from google.adk.runners import InMemoryRunner

    # ADK 2.13 deprecates Runner(plugins=...) (a DeprecationWarning on every run, even
    # with no plugins) in favour of App(plugins=...), which exists from ADK 2.3 on.
    runner = InMemoryRunner(app=App(name=app_name, root_agent=agent, plugins=list(plugins)))
    try:
        return await run_turn_on(runner, message, streaming=streaming, user_id=user_id)
    finally:
        await runner.close()


async def run_turn_on(
    runner: Runner, message: str = "hello", *, streaming: bool = False, user_id: str = "user"
) -> Turn:
    """Send ``message`` through an existing ``runner``, in a new session of its service.

    The runner stays open (it is the caller's). :func:`run_turn` is this on
    an ``InMemoryRunner`` of its own.

    Example:
        >>> # turn = await run_turn_on(InMemoryRunner(agent=agent, plugins=[RetryPlugin()]), "hi")
    """
    from google.adk.agents.run_config import RunConfig, StreamingMode  # type: ignore[attr-defined,unused-ignore]
    from google.genai import types

    session = await runner.session_service.create_session(app_name=runner.app_name, user_id=user_id)
    mode = StreamingMode.SSE if streaming else StreamingMode.NONE
    events = [
        event
        async for event in runner.run_async(
            user_id=user_id,
            session_id=session.id,
            new_message=types.Content(role="user", parts=[types.Part(text=message)]),
            run_config=RunConfig(streaming_mode=mode),
        )
    ]
    text = "".join(
        part.text
        for event in events
        if not event.partial and event.content and event.content.parts
        for part in event.content.parts
        if part.text and not part.thought
    )
    return Turn(events=events, text=text)


@contextmanager
def example_model(*script: Fault, name: str = "openai/example") -> Iterator[LiteLlm]:
    """The model an example runs on: a real provider, or the fault server playing ``script``.

    With ``ADK_RETRY_MODEL`` set (a LiteLLM model name, its key in the
    provider's usual variable), a real ``LiteLlm``; otherwise one talking to a
    :class:`~adk_retry.testing.FaultServer` that answers with ``script``, for
    as long as the block lasts.

    Example:
        >>> from adk_retry.testing import Fault
        >>> with example_model(Fault.ok("hi")) as model:
        ...     model.model
        'openai/example'
    """
    from google.adk.models.lite_llm import LiteLlm

    from adk_retry.testing.server import FaultServer

    real_model = os.environ.get("ADK_RETRY_MODEL")
    if real_model:
        yield LiteLlm(model=real_model)
        return
    with FaultServer(*script) as server:
        yield LiteLlm(model=name, api_base=server.url, api_key="sk-fake")
