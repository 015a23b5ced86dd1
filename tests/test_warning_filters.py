"""pytest's warning filters: only named third-party warnings are ignored; adk-retry's own fail.

The filters are read from pyproject.toml and applied exactly as pytest applies
them, then real warnings are attributed to modules with ``warn_explicit``.
"""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

import pytest
from _pytest.config import parse_warning_filter

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
FILTERS = tomllib.loads(PYPROJECT.read_text())["tool"]["pytest"]["ini_options"]["filterwarnings"]


def outcome(message: str, category: type[Warning], module: str) -> str:
    """What the project's filters do with this warning: "error", "ignored" or "shown"."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.resetwarnings()
        warnings.simplefilter("default")
        for entry in FILTERS:  # pytest applies them in order, so the last match wins
            warnings.filterwarnings(*parse_warning_filter(entry, escape=False))
        try:
            warnings.warn_explicit(message, category, f"{module.replace('.', '/')}.py", 1, module=module)
        except Warning:
            return "error"
    return "shown" if seen else "ignored"


def test_no_blanket_ignore():
    for entry in FILTERS:
        action, message, category, module, _ = parse_warning_filter(entry, escape=False)
        if action == "ignore":
            assert message, f"{entry!r} ignores every message"
            assert module, f"{entry!r} ignores it from every module"
            assert category is not Warning, f"{entry!r} ignores every category"


@pytest.mark.parametrize(
    ("message", "category", "module", "expected"),
    [
        # adk-retry's code and tests must not touch anything deprecated.
        ("old import path", DeprecationWarning, "adk_retry.policy", "error"),
        ("old import path", DeprecationWarning, "tests.test_policy", "error"),
        # A deprecation inside ADK or litellm shows (it may be adk-retry's call that triggers it).
        ("The `plugins` argument is deprecated.", DeprecationWarning, "google.adk.runners", "shown"),
        ("something is deprecated", DeprecationWarning, "litellm.main", "shown"),
        ("something odd", UserWarning, "litellm.utils", "shown"),
        # ADK's experimental markers: ignored in ADK's internals and tests, shown when adk_retry builds one.
        (
            "[EXPERIMENTAL] feature FALLBACK_MODEL is enabled.",
            UserWarning,
            "google.adk.features._feature_decorator",
            "ignored",
        ),
        ("[EXPERIMENTAL] LocalEnvironment: ...", UserWarning, "tests.agents.test_adk_tools", "ignored"),
        ("[EXPERIMENTAL] LocalEnvironment: ...", UserWarning, "adk_retry.agents.software_engineer", "shown"),
        # Named third-party noise.
        (
            "Item 'summary' on TypedDict class 'ChatCompletionReasoningItem' is using the `ReadOnly` qualifier.",
            UserWarning,
            "pydantic._internal._generate_schema",
            "ignored",
        ),
    ],
)
def test_filter_outcome(message, category, module, expected):
    assert outcome(message, category, module) == expected


def test_litellm_pydantic_deprecation_is_ignored_only_from_litellm():
    from pydantic.warnings import PydanticDeprecatedSince211

    message = "Accessing the 'model_fields' attribute on the instance is deprecated. Instead, ..."
    category = PydanticDeprecatedSince211
    assert outcome(message, category, "litellm.litellm_core_utils.model_response_utils") == "ignored"
    assert outcome(message, category, "adk_retry.snapshot") == "error"
