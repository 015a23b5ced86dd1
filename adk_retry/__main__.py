"""``python -m adk_retry demo``."""

from adk_retry.cli import main

main(prog_name="adk-retry")
