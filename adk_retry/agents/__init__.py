"""Ready-made ADK agents whose model calls are retried.

Example:
    >>> from adk_retry.agents import create_enhanced_software_engineer_agent
    >>> agent = create_enhanced_software_engineer_agent(workspace=".")  # doctest: +SKIP
"""

from adk_retry.agents.software_engineer import (
    DEFAULT_ALLOWED_COMMANDS,
    DEFAULT_MODEL,
    SoftwareEngineerTools,
    create_enhanced_software_engineer_agent,
)
from adk_retry.agents.workspace import Workspace, WorkspaceError

__all__ = [
    "DEFAULT_ALLOWED_COMMANDS",
    "DEFAULT_MODEL",
    "SoftwareEngineerTools",
    "Workspace",
    "WorkspaceError",
    "create_enhanced_software_engineer_agent",
]
