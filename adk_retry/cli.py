"""The ``adk-retry`` command line."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import click

__all__ = ["main"]

# Help text is short already; wrap at 100 columns so no line is cut to "..." on a normal terminal.
_CONTEXT = {"max_content_width": 100, "help_option_names": ["-h", "--help"]}


def _version() -> str:
    try:
        return version("adk-retry")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "unknown (not installed)"


@click.group(context_settings=_CONTEXT)
@click.version_option(_version(), "-V", "--version", prog_name="adk-retry", message="%(prog)s %(version)s")
def main() -> None:
    """adk-retry: retry for Google ADK agents' model calls."""


@main.command(short_help="Run an ADK agent through scripted model faults (no key, no network).")
@click.option("-v", "--verbose", is_flag=True, help="Also print adk-retry's own log lines.")
def demo(verbose: bool) -> None:
    """Run the software-engineer agent through scripted model faults (no key, no network).

    A local fault server plays the model: it answers with nothing, with a null
    message, with a tool call and with a real answer, in a fixed order. The
    demo labels each fault as adk-retry retries it and ends with a summary of
    calls, attempts, retries, upstream requests and time slept.
    ADK_RETRY_NO_WAITS=1 skips the sleeping (delays are still computed).
    """
    from adk_retry.demo import main as run

    run(verbose=verbose)
