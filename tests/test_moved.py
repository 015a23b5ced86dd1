"""Every import path of 0.1 still works, as the new module itself, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import sys

import pytest

import adk_retry
from adk_retry import _moved


@pytest.mark.parametrize("old", sorted(_moved.MODULES))
def test_an_old_module_path_is_the_new_module_with_a_warning(old: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=old.replace(".", r"\.")):
        module = importlib.import_module(old)
    assert module is importlib.import_module(_moved.MODULES[old])


@pytest.mark.parametrize("name", sorted(_moved.NAMES))
def test_a_name_that_left_the_top_level_still_resolves_with_a_warning(name: str) -> None:
    home, attribute = _moved.NAMES[name]
    # `adk_retry.redact` was both a module and a function in 0.1 (the function won); importing the
    # old module path above binds the module on the package, as importing any submodule does.
    vars(adk_retry).pop(name, None)
    with pytest.warns(DeprecationWarning, match=name):
        value = getattr(adk_retry, name)
    assert value is getattr(importlib.import_module(home), attribute)


def test_old_classes_are_the_new_ones() -> None:
    sys.modules.pop("adk_retry.handler", None)
    sys.modules.pop("adk_retry.redis_store", None)
    with pytest.warns(DeprecationWarning, match="adk_retry.handler"):
        from adk_retry.handler import RetryHandler
    with pytest.warns(DeprecationWarning, match="adk_retry.redis_store"):
        from adk_retry.redis_store import RedisStore
    from adk_retry.guards import RedisStore as NewRedisStore

    assert RetryHandler is adk_retry.RetryHandler
    assert RedisStore is NewRedisStore


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        adk_retry.nothing_here  # noqa: B018


def test_the_top_level_is_the_essentials_sorted_and_documented() -> None:
    assert adk_retry.__all__ == sorted(adk_retry.__all__)
    assert len(adk_retry.__all__) <= 20
    for name in adk_retry.__all__:
        assert getattr(adk_retry, name).__doc__, name
