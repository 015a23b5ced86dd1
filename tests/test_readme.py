"""The README's commands are the ones CI runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv .venv &&")]
    assert len(commands) == 2, "the README opens with the demo and the test command"
    demo, tests = commands
    assert demo.endswith("adk-retry demo")
    assert tests in ci.splitlines()


def test_public_api_is_explicit_and_sorted():
    import adk_retry

    assert adk_retry.__all__ == sorted(adk_retry.__all__)
    for name in adk_retry.__all__:
        assert getattr(adk_retry, name).__doc__ or name.isupper(), f"{name} has no docstring"
