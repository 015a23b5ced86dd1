"""Which calls share one retry budget or one circuit breaker."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

__all__ = ["Scope", "scope_key"]

Scope = Literal["model", "provider", "agent", "app"]
"""``"model"`` (default): one per model name; ``"provider"``: one per LiteLLM
provider prefix (``openai/...``); ``"agent"``: one per agent; ``"app"``: one
for everything in the store."""


@lru_cache(maxsize=4096)  # called several times per guarded call with the same few arguments
def scope_key(kind: str, scope: Scope, key: str | None, *, model: str | None, agent: str) -> str:
    """The store key for a ``kind`` ("budget" or "circuit") of state.

    An explicit ``key`` wins, so unrelated agents, models or processes can
    share one bucket or breaker on purpose.

    Example:
        >>> scope_key("circuit", "model", None, model="openai/gpt-4o", agent="a")
        'circuit:model:openai/gpt-4o'
        >>> scope_key("budget", "provider", None, model="openai/gpt-4o", agent="a")
        'budget:provider:openai'
        >>> scope_key("budget", "model", "shared", model="openai/gpt-4o", agent="a")
        'budget:key:shared'
    """
    if key is not None:
        return f"{kind}:key:{key}"
    if scope == "app":
        return f"{kind}:app"
    if scope == "agent":
        return f"{kind}:agent:{agent}"
    name = model or agent
    if scope == "provider":
        name = name.split("/", 1)[0]
    return f"{kind}:{scope}:{name}"
