"""adk-retry's logger and the one function that writes its retry records.

All records go to the ``adk_retry`` logger, with lazy ``%``-formatting over a
mapping of named fields (so a template may use them in any order) and the
same fields as ``extra`` attributes for structured handlers. A
:class:`~adk_retry.redact.RedactingFilter` sits on the logger, and error
texts are redacted before they are even put in a record.
"""

from __future__ import annotations

import logging
from typing import Any

from adk_retry.redact import RedactingFilter

__all__ = ["emit", "logger"]

logger = logging.getLogger("adk_retry")
logger.addFilter(RedactingFilter())

_EXTRA_KEYS = ("agent", "attempt", "max_attempts", "delay", "error_type", "reason")


def emit(level: int, templates: tuple[str, ...], fields: dict[str, Any]) -> None:
    """Log each template of ``templates`` at ``level`` with ``fields``.

    Example:
        >>> emit(logging.INFO, ("[%(agent)s] hello",), {"agent": "a"})
    """
    if not logger.isEnabledFor(level):
        return
    extra = {key: fields[key] for key in _EXTRA_KEYS if key in fields}
    for template in templates:
        logger.log(level, template, fields, extra=extra)
