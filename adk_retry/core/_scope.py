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
    """The store key for a ``kind`` ("budget", "circuit", "rate") of state.

    An explicit ``key`` wins, so unrelated agents, models or processes can
    share one bucket or breaker on purpose.

    ``kind`` picks no namespace of its own: every kind lives in a namespace
    of its own already (a store's buckets and circuits are reached through
    different operations, and :class:`~adk_retry.guards._store.MemoryStore` and
    :class:`~adk_retry.guards._redis.RedisStore` keep them apart, the latter as
    ``<prefix>budget:...`` and ``<prefix>circuit:...``). Naming it here too
    gave Redis keys like ``adk_retry:budget:budget:model:...``. It stays in
    the signature so each caller still says which state it means.

    Example:
        >>> scope_key("circuit", "model", None, model="openai/gpt-4o", agent="a")
        'model:openai/gpt-4o'
        >>> scope_key("budget", "provider", None, model="openai/gpt-4o", agent="a")
        'provider:openai'
        >>> scope_key("budget", "model", "shared", model="openai/gpt-4o", agent="a")
        'key:shared'
        >>> scope_key("budget", "agent", None, model=None, agent="a")
        'agent:a'
        >>> scope_key("circuit", "app", None, model=None, agent="a")
        'app'
    """
    del kind  # see above: the store's operation names the kind
    if key is not None:
        return f"key:{key}"
    if scope == "app":
        return "app"
    if scope == "agent":
        return f"agent:{agent}"
    name = model or agent
    if scope == "provider":
        name = name.split("/", 1)[0]
    return f"{scope}:{name}"
