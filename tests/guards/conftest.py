"""Fixtures of the guards' tests: one real redis-server per test module, and a key prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.redis_server import RedisServer, running_redis


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this module's own (skipped without the binary, a failure when CI=true)."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests sharing the server never meet."""
    return f"test:{uuid.uuid4().hex}:"
