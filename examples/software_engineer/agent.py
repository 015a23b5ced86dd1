"""A software-engineer agent whose model calls are retried, ready for ``adk run`` / ``adk web``.

Run it from the repository to work on (it is the workspace unless
``ADK_RETRY_WORKSPACE`` names another directory)::

    export OPENAI_API_KEY=...                  # the key of the model's provider
    export ADK_RETRY_MODEL=openai/gpt-4o-mini  # any LiteLLM model name (this is the default)
    adk run path/to/examples/software_engineer # or: adk web path/to/examples

It only reads files by default. ``ADK_RETRY_ALLOW_WRITE=1`` lets it write and
edit files; ``ADK_RETRY_ALLOW_COMMANDS=1`` lets it run ``ls``, ``git``,
``python``, ``pytest``, ``ruff`` and a few more, which can run any code in the
workspace: use that only on a repository you can restore (e.g. with git).

Example:
    >>> from examples.software_engineer.agent import root_agent  # doctest: +SKIP
    >>> root_agent.name
    'software_engineer'
"""

import os

from adk_retry.agents import create_enhanced_software_engineer_agent


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


root_agent = create_enhanced_software_engineer_agent(
    workspace=os.environ.get("ADK_RETRY_WORKSPACE") or os.getcwd(),
    allow_write=_flag("ADK_RETRY_ALLOW_WRITE"),
    allow_commands=_flag("ADK_RETRY_ALLOW_COMMANDS"),
)
