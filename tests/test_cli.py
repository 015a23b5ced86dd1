"""The ``adk-retry`` command line: version and help."""

from __future__ import annotations

from importlib.metadata import version

from click.testing import CliRunner

from adk_retry.cli import main


def test_version_prints_the_installed_package_version():
    for flag in ("--version", "-V"):
        result = CliRunner().invoke(main, [flag])
        assert result.exit_code == 0, result.output
        assert result.output == f"adk-retry {version('adk-retry')}\n"


def test_help_lists_demo_without_truncating_its_line():
    result = CliRunner().invoke(main, ["--help"], terminal_width=80, prog_name="adk-retry")
    assert result.exit_code == 0, result.output
    assert "-V, --version" in result.output
    demo_line = next(line for line in result.output.splitlines() if line.strip().startswith("demo"))
    assert demo_line.strip() == "demo  Run an ADK agent through scripted model faults (no key, no network)."
    commands = result.output.split("Commands:")[1]
    assert "..." not in commands  # click cuts a too-long first docstring line to "..."


def test_demo_help_explains_the_demo_and_its_options():
    result = CliRunner().invoke(main, ["demo", "-h"], terminal_width=80)
    assert result.exit_code == 0, result.output
    assert "--verbose" in result.output
    assert "ADK_RETRY_NO_WAITS=1" in result.output
