"""Where the modules of adk-retry 0.1 went, so that every import path of 0.1 keeps working.

0.1 had one flat package (``adk_retry.handler``, ``adk_retry.redis_store``,
...); 0.2 puts each module in the room of its concern (see
``docs/architecture.md``). An import of an old path gets the new module
itself (the same object, so ``isinstance`` and monkeypatching agree) with a
``DeprecationWarning`` that names the new home. Names that left the top
level (``adk_retry.MemoryStore``, ...) are served the same way by
``adk_retry.__getattr__``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

__all__ = ["MODULES", "NAMES", "install"]

MODULES: dict[str, str] = {
    "adk_retry.adaptive": "adk_retry.guards._adaptive",
    "adk_retry.backoff": "adk_retry.core._backoff",
    "adk_retry.breaker": "adk_retry.core._breaker",
    "adk_retry.budget": "adk_retry.core._budget",
    "adk_retry.call_state": "adk_retry.adapter._call_state",
    "adk_retry.callbacks": "adk_retry.adapter._callbacks",
    "adk_retry.classify": "adk_retry.core._empty",
    "adk_retry.clock": "adk_retry.core._clock",
    "adk_retry.errors": "adk_retry.core._errors",
    "adk_retry.events": "adk_retry.core._events",
    "adk_retry.handler": "adk_retry.engine._loop",
    "adk_retry.hints": "adk_retry.core._hints",
    "adk_retry.integration": "adk_retry.adapter._attach",
    "adk_retry.layers": "adk_retry.adapter._layers",
    "adk_retry.log": "adk_retry.observability._log",
    "adk_retry.metrics": "adk_retry.observability",
    "adk_retry.ollama": "adk_retry.contrib.ollama",
    "adk_retry.plugin": "adk_retry.adapter._plugin",
    "adk_retry.policy": "adk_retry.core._policy",
    "adk_retry.redact": "adk_retry.observability._redact",
    "adk_retry.redis_store": "adk_retry.guards._redis",
    "adk_retry.rules": "adk_retry.core._rules",
    "adk_retry.scope": "adk_retry.core._scope",
    "adk_retry.snapshot": "adk_retry.adapter._snapshot",
    "adk_retry.stats": "adk_retry.observability._stats",
    "adk_retry.store": "adk_retry.guards._store",
    "adk_retry.transient": "adk_retry.core._transient",
}
"""Old module path -> the module that now holds its contents."""

NAMES: dict[str, tuple[str, str]] = {
    "MemoryStore": ("adk_retry.guards", "MemoryStore"),
    "StateStore": ("adk_retry.guards", "StateStore"),
    "Metrics": ("adk_retry.observability", "Metrics"),
    "enable_metrics": ("adk_retry.observability", "enable_metrics"),
    "stats_by_agent": ("adk_retry.observability", "stats_by_agent"),
    "stats_by_model": ("adk_retry.observability", "stats_by_model"),
    "RedactingFilter": ("adk_retry.observability", "RedactingFilter"),
    "redact": ("adk_retry.observability", "redact"),
    "TRANSIENT": ("adk_retry.core._policy", "TRANSIENT"),
}
"""Names 0.1 exported from ``adk_retry`` that now live in a named submodule."""

_PUBLIC_HOME = {
    "adk_retry.redis_store": "adk_retry.guards",
    "adk_retry.store": "adk_retry.guards",
    "adk_retry.adaptive": "adk_retry.guards",
    "adk_retry.metrics": "adk_retry.observability",
    "adk_retry.redact": "adk_retry.observability",
    "adk_retry.stats": "adk_retry.observability",
    "adk_retry.log": "adk_retry.observability",
    "adk_retry.ollama": "adk_retry.contrib.ollama",
}
"""Where the public names of an old module are imported from now (default: ``adk_retry``)."""

_HOMES = {
    "TRANSIENT": 'RetryPolicy.transient() (or retry_on="transient")',
}


def moved_name(name: str) -> object:
    """The object a 0.1 top-level name now is, with a deprecation warning; AttributeError if unknown."""
    if name not in NAMES:
        raise AttributeError(f"module 'adk_retry' has no attribute {name!r}")
    module, attribute = NAMES[name]
    home = _HOMES.get(name, f"{module}.{attribute}")
    warnings.warn(f"adk_retry.{name} moved: use {home}", DeprecationWarning, stacklevel=3)
    return getattr(importlib.import_module(module), attribute)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves an old module path with the new module object."""

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        home = _PUBLIC_HOME.get(spec.name, "adk_retry")
        warnings.warn(f"{spec.name} is deprecated: import its names from {home}", DeprecationWarning, 2)
        return importlib.import_module(MODULES[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        # The module is the new one, already executed: nothing to run again.
        return None


_FINDER = _Finder()


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (``import adk_retry`` does)."""
    if _FINDER not in sys.meta_path:
        # First: a stale file of 0.1 left on the path (or an editable install elsewhere) must not win.
        sys.meta_path.insert(0, _FINDER)
