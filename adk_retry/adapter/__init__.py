"""The adapter to ADK: wrap a model instance, attach to agents, callbacks, the plugin, the layers beneath.

Everything that knows ADK's classes lives here; the engine and the core do
not import ADK at import time.
"""

from __future__ import annotations

from adk_retry.adapter._attach import add_retry_capabilities_to_agent, remove_retry_capabilities
from adk_retry.adapter._callbacks import create_retry_callbacks
from adk_retry.adapter._plugin import RetryPlugin

__all__ = ["RetryPlugin", "add_retry_capabilities_to_agent", "create_retry_callbacks", "remove_retry_capabilities"]
