"""The ``adk-retry`` command line."""

from __future__ import annotations

import click

__all__ = ["main"]


@click.group()
def main() -> None:
    """adk-retry: retry for Google ADK agents' model calls."""


@main.command()
def demo() -> None:
    """Run the software-engineer agent through scripted model faults (no key, no network)."""
    from adk_retry.demo import main as run

    run()
