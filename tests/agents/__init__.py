"""Tests of the ready-made agents in ``adk_retry.agents``."""
