"""Placeholder, replaced by the transient classifier."""

from __future__ import annotations

from adk_retry.classify import seed_default


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is transient."""
    return seed_default(exc)
