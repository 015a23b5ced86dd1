"""Contributions for particular providers: :mod:`adk_retry.contrib.ollama` (out-of-memory recovery)."""
