"""The software-engineer agent as an ADK app: ``adk run examples/software_engineer``."""

from . import agent

__all__ = ["agent"]
