"""An ADK ``App`` with ``RetryPlugin`` and a non-default policy, for ``adk run`` / ``adk web`` / ``adk api_server``.

    export OPENAI_API_KEY=...                   # the key of the model's provider
    export ADK_RETRY_MODEL=openai/gpt-4o-mini   # any LiteLLM model name (this is the default)
    adk run examples/retry_app                  # or: adk web examples / adk api_server examples

``ADK_RETRY_API_BASE`` sends the model's requests to another OpenAI-compatible
server (a local proxy, or adk-retry's fault server in the tests).

ADK's loader looks for ``app`` before ``root_agent``, so the plugin declared
here is on every run of this folder with no command-line flag. Do not also
pass ``--extra_plugins adk_retry.RetryPlugin`` for this folder: ADK would add
a second plugin beside this one.

Example:
    >>> from examples.retry_app.agent import app  # doctest: +SKIP
    >>> app.plugins[0].policy.retry_on
    'transient'
"""

import os

from google.adk.agents import LlmAgent
from google.adk.apps import App
from google.adk.models.lite_llm import LiteLlm

from adk_retry import RetryPlugin, RetryPolicy


def _model() -> LiteLlm:
    """The agent's model: ``$ADK_RETRY_MODEL`` (default ``openai/gpt-4o-mini``), at ``$ADK_RETRY_API_BASE`` if set."""
    options = {"api_base": os.environ["ADK_RETRY_API_BASE"]} if os.environ.get("ADK_RETRY_API_BASE") else {}
    return LiteLlm(model=os.environ.get("ADK_RETRY_MODEL", "openai/gpt-4o-mini"), **options)


root_agent = LlmAgent(
    name="assistant",
    model=_model(),
    instruction="Answer the user's question in one or two sentences.",
)

# The App's name must be the folder's name for `adk run` / `adk web` to find its sessions.
app = App(
    name="retry_app",
    root_agent=root_agent,
    # Any policy fits here: this one also retries rate limits, 5xx, timeouts
    # and dropped connections, and turns off the retries beneath it.
    plugins=[RetryPlugin(RetryPolicy.transient())],
)
