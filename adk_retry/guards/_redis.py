"""Budget and breaker state shared by every process that points at one Redis.

``pip install adk-retry[redis]``. :class:`RedisStore` implements
:class:`~adk_retry.guards._store.StateStore` with the same semantics as
:class:`~adk_retry.guards._store.MemoryStore`, but in Redis, so a fleet of workers
spends one retry budget and trips one breaker per provider:

- each operation is ONE Lua script (``EVALSHA``), so it is atomic across
  processes: two workers can never both take the last token or both become
  the half-open probe;
- every key is written with a TTL (``ttl``; a circuit's key lives at least
  twice its open time), so abandoned state expires by itself;
- numbers travel as strings written with 17 significant digits, so a value
  reads back as exactly the float that was computed.

Redis must never turn a provider hiccup into an outage of its own. When it
does not answer (a connection or timeout error), the operation falls back to
a local :class:`~adk_retry.guards._store.MemoryStore`: it fails open with this
process's own state, logs ONE warning on the ``adk_retry.redis`` logger for
the whole outage, and leaves Redis alone for ``recheck_after`` seconds so a
dead server does not cost a timeout on every call. The first operation that
Redis answers again logs one INFO line and ends the outage.

Example:
    >>> store = RedisStore.from_url("redis://127.0.0.1:6379/0", prefix="myapp:retry:")  # doctest: +SKIP
    >>> await store.take_token("openai/gpt-4o", max_tokens=10)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

try:
    from redis import exceptions as redis_errors
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("adk_retry.guards._redis needs the redis package: pip install 'adk-retry[redis]'") from exc

from adk_retry.core._checks import require_seconds, require_type
from adk_retry.guards._store import CircuitState, CircuitView, MemoryStore, StateStore
from adk_retry.observability._log import describe, get_logger

__all__ = ["RedisStore"]

logger = get_logger("redis")

_T = TypeVar("_T")

_STATES: dict[str, CircuitState] = {"closed": "closed", "open": "open", "half_open": "half_open"}

# Any Redis error, not only a lost connection: an error reply (NOREPLICAS,
# MISCONF when the disk is full, BUSY, NOPERM) must not replace the model's own
# result either. The state store fails open; a real bug in a script would show
# in the warning this logs, once per outage.
_UNAVAILABLE: tuple[type[BaseException], ...] = (redis_errors.RedisError, OSError)

# A key's TTL is capped (ten years) so an infinite cool-down still gives a valid PEXPIRE.
_MAX_TTL_MS = 10 * 365 * 86400 * 1000

# Shared Lua helpers: numbers go out as strings with 17 significant digits
# (a double's exact round trip), and a circuit's state is derived from its
# ``open_until`` exactly like ``adk_retry.guards._store.circuit_state``.
_LUA_HELPERS = """
local function num(x) return string.format('%.17g', x) end
local function state(open_until, now)
  if open_until == 0 then return 'closed' end
  if now < open_until then return 'open' end
  return 'half_open'
end
"""

# KEYS[1] bucket; ARGV max_tokens, ttl_ms. Returns 1 when a token was taken.
_TAKE_TOKEN = (
    _LUA_HELPERS
    + """
local left = tonumber(redis.call('GET', KEYS[1])) or tonumber(ARGV[1])
if left < 1 then return 0 end
redis.call('SET', KEYS[1], num(left - 1), 'PX', ARGV[2])
return 1
"""
)

# KEYS[1] bucket; ARGV amount, max_tokens, ttl_ms.
_REFUND = (
    _LUA_HELPERS
    + """
local cap = tonumber(ARGV[2])
local left = tonumber(redis.call('GET', KEYS[1])) or cap
redis.call('SET', KEYS[1], num(math.min(cap, left + tonumber(ARGV[1]))), 'PX', ARGV[3])
return 1
"""
)

# KEYS[1] bucket; ARGV max_tokens. Returns the tokens left, as a string.
_TOKENS = """
local left = redis.call('GET', KEYS[1])
if left then return left end
return ARGV[1]
"""

# KEYS[1] circuit hash; ARGV now, probe_timeout, ttl_ms.
# Returns {state, open_until, failures, allowed}.
_ADMIT = (
    _LUA_HELPERS
    + """
local now = tonumber(ARGV[1])
local c = redis.call('HMGET', KEYS[1], 'failures', 'open_until', 'probing_since')
local failures = tonumber(c[1]) or 0
local open_until = tonumber(c[2]) or 0
if open_until == 0 then return {'closed', '0', failures, 1} end
local st = state(open_until, now)
local probing = tonumber(c[3]) or 0
local allowed = 0
if st == 'half_open' and (probing == 0 or now - probing >= tonumber(ARGV[2])) then
  allowed = 1
  redis.call('HSET', KEYS[1], 'probing_since', num(now))
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
end
return {st, num(open_until), failures, allowed}
"""
)

# KEYS[1] circuit hash; ARGV now, threshold, cooldown, hint ('' for none), keep_ms.
# Returns {state before, state after, open_until, failures}.
_RECORD_FAILURE = (
    _LUA_HELPERS
    + """
local now = tonumber(ARGV[1])
local hint = ARGV[4]
local c = redis.call('HMGET', KEYS[1], 'failures', 'open_until', 'probing_since')
local failures = (tonumber(c[1]) or 0) + 1
local open_until = tonumber(c[2]) or 0
local probing = tonumber(c[3]) or 0
local before = state(open_until, now)
local h = 0
if hint ~= '' then h = tonumber(hint) end
if before == 'half_open' or failures >= tonumber(ARGV[2]) then
  open_until = math.max(open_until, now + math.max(tonumber(ARGV[3]), h))
  probing = 0
elseif h > 0 then
  open_until = math.max(open_until, now + h)
  probing = 0
end
redis.call('HSET', KEYS[1], 'failures', failures, 'open_until', num(open_until), 'probing_since', num(probing))
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[5]) then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
return {before, state(open_until, now), num(open_until), failures}
"""
)

# KEYS[1] circuit hash. Returns the state before: an opened circuit can only
# have let a probe through, so a success there closes a half-open circuit.
_RECORD_SUCCESS = """
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until')) or 0
redis.call('DEL', KEYS[1])
if open_until ~= 0 then return 'half_open' end
return 'closed'
"""


def _arg(value: float) -> str:
    """A float as the exact decimal text Lua's ``tonumber`` reads back bit for bit."""
    return repr(float(value))


def _text(value: Any) -> str:
    """A Redis reply as ``str``, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(seconds: float) -> int:
    """``seconds`` as whole milliseconds for ``PX``/``PEXPIRE``: at least 1, at most ten years."""
    milliseconds = seconds * 1000.0
    if not milliseconds < _MAX_TTL_MS:  # also infinity and NaN
        return _MAX_TTL_MS
    return max(1, math.ceil(milliseconds))


def _mask(url: str) -> str:
    """``url`` with any password replaced by ``***``, for an error message.

    Example:
        >>> _mask("redis://user:hunter2@cache:6379/0")
        'redis://user:***@cache:6379/0'
    """
    return re.sub(r"//([^/@:]*):[^/@]*@", r"//\1:***@", url)


class RedisStore:
    """Budget and breaker state in Redis, shared by every process that uses it.

    Args:
        client: a ``redis.asyncio.Redis``. Give it short socket timeouts and no
            retries of its own (as :meth:`from_url` does): while Redis hangs,
            every operation waits for it until the timeout says it is down.
        prefix: put before every key, so several applications can share one Redis.
        ttl: seconds every key lives after its last write (a circuit's key at
            least twice its open time), so abandoned buckets and circuits
            expire. An expired bucket is full again; an expired circuit is closed.
        fallback: the store used while Redis does not answer (default: a fresh
            :class:`~adk_retry.guards._store.MemoryStore`). Its state is this process's
            alone, is not merged into Redis afterwards, and is kept for the
            next outage.
        recheck_after: seconds to leave Redis alone after a failure before
            trying it again; meanwhile operations go to ``fallback`` at once.

    Attributes:
        degraded: True while Redis is unreachable and ``fallback`` answers.

    Example:
        >>> import redis.asyncio
        >>> store = RedisStore(redis.asyncio.Redis(host="127.0.0.1"), prefix="myapp:")
        >>> store.degraded
        False
        >>> await store.take_token("openai/gpt-4o", max_tokens=10)  # doctest: +SKIP
        True
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "adk_retry:",
        ttl: float = 3600.0,
        fallback: StateStore | None = None,
        recheck_after: float = 1.0,
    ) -> None:
        if not callable(getattr(client, "register_script", None)):
            hint = "; for a URL use RedisStore.from_url(...)" if isinstance(client, str) else ""
            raise TypeError(f"RedisStore: client must be a redis.asyncio.Redis, got {type(client).__name__}{hint}")
        require_type("RedisStore", "prefix", prefix, str)
        if fallback is not None and not isinstance(fallback, StateStore):
            raise TypeError(f"RedisStore: fallback must be a StateStore, got {type(fallback).__name__}: {fallback!r}")
        self.client = client
        self.prefix = prefix
        self.ttl = require_seconds("RedisStore", "ttl", ttl, zero_ok=False)
        self.fallback: StateStore = fallback if fallback is not None else MemoryStore()
        self.recheck_after = require_seconds("RedisStore", "recheck_after", recheck_after, zero_ok=True)
        self.degraded = False
        self._skip_until = 0.0  # monotonic time before which Redis is not tried
        self._failed_at = -math.inf  # monotonic time of the latest failure
        self._take_token = client.register_script(_TAKE_TOKEN)
        self._refund = client.register_script(_REFUND)
        self._tokens = client.register_script(_TOKENS)
        self._admit = client.register_script(_ADMIT)
        self._record_failure = client.register_script(_RECORD_FAILURE)
        self._record_success = client.register_script(_RECORD_SUCCESS)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "adk_retry:",
        ttl: float = 3600.0,
        fallback: StateStore | None = None,
        recheck_after: float = 1.0,
        **client_kwargs: Any,
    ) -> RedisStore:
        """A store on a new client for ``url`` (``redis://``, ``rediss://`` or ``unix://``).

        The client gets short timeouts unless ``client_kwargs`` say otherwise:
        ``socket_connect_timeout=0.5`` and ``socket_timeout=0.5`` seconds, and
        no retries of its own (``retry=Retry(NoBackoff(), 0)``). So a Redis that
        hangs costs one operation at most about 0.5 s before it falls back to
        memory, and the operations of the next ``recheck_after`` seconds nothing.

        Raises:
            ValueError: ``url`` is not a Redis URL (the message names it, password masked).

        Example:
            >>> store = RedisStore.from_url("redis://127.0.0.1:6379/0", ttl=600)
            >>> store.ttl
            600.0
            >>> RedisStore.from_url("localhost:6379")  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            ValueError: invalid Redis URL 'localhost:6379': Redis URL must specify one of the following schemes ...
        """
        client_kwargs.setdefault("socket_connect_timeout", 0.5)
        client_kwargs.setdefault("socket_timeout", 0.5)
        client_kwargs.setdefault("retry", Retry(NoBackoff(), 0))
        try:
            client = Redis.from_url(url, **client_kwargs)
        except ValueError as exc:
            raise ValueError(f"invalid Redis URL {_mask(url)!r}: {exc}") from exc
        return cls(client, prefix=prefix, ttl=ttl, fallback=fallback, recheck_after=recheck_after)

    async def aclose(self) -> None:
        """Close the Redis client (and its connection pool)."""
        await self.client.aclose()

    def bucket_key(self, key: str) -> str:
        """The Redis key of budget bucket ``key``.

        Example:
            >>> import redis.asyncio
            >>> RedisStore(redis.asyncio.Redis(), prefix="myapp:").bucket_key("openai/gpt-4o")
            'myapp:budget:openai/gpt-4o'
        """
        return f"{self.prefix}budget:{key}"

    def circuit_key(self, key: str) -> str:
        """The Redis key (a hash) of circuit ``key``.

        Example:
            >>> import redis.asyncio
            >>> RedisStore(redis.asyncio.Redis()).circuit_key("openai/gpt-4o")
            'adk_retry:circuit:openai/gpt-4o'
        """
        return f"{self.prefix}circuit:{key}"

    # -- the StateStore operations ------------------------------------------

    async def take_token(self, key: str, *, max_tokens: float) -> bool:
        """See :meth:`StateStore.take_token`."""

        async def remote() -> bool:
            reply = await self._take_token(keys=[self.bucket_key(key)], args=[_arg(max_tokens), _ms(self.ttl)])
            return bool(int(reply))

        return await self._run(remote, lambda: self.fallback.take_token(key, max_tokens=max_tokens))

    async def refund(self, key: str, amount: float, *, max_tokens: float) -> None:
        """See :meth:`StateStore.refund`."""

        async def remote() -> None:
            await self._refund(keys=[self.bucket_key(key)], args=[_arg(amount), _arg(max_tokens), _ms(self.ttl)])

        await self._run(remote, lambda: self.fallback.refund(key, amount, max_tokens=max_tokens))

    async def tokens(self, key: str, *, max_tokens: float) -> float:
        """See :meth:`StateStore.tokens`."""

        async def remote() -> float:
            return float(_text(await self._tokens(keys=[self.bucket_key(key)], args=[_arg(max_tokens)])))

        return await self._run(remote, lambda: self.fallback.tokens(key, max_tokens=max_tokens))

    async def admit(self, key: str, now: float, *, probe_timeout: float) -> CircuitView:
        """See :meth:`StateStore.admit`."""

        async def remote() -> CircuitView:
            state, open_until, failures, allowed = await self._admit(
                keys=[self.circuit_key(key)], args=[_arg(now), _arg(probe_timeout), _ms(self.ttl)]
            )
            return CircuitView(_STATES[_text(state)], float(_text(open_until)), int(failures), bool(int(allowed)))

        return await self._run(remote, lambda: self.fallback.admit(key, now, probe_timeout=probe_timeout))

    async def record_failure(
        self, key: str, now: float, *, threshold: int, cooldown: float, hint: float | None
    ) -> tuple[CircuitState, CircuitView]:
        """See :meth:`StateStore.record_failure`."""

        async def remote() -> tuple[CircuitState, CircuitView]:
            keep = _ms(max(self.ttl, 2.0 * cooldown, 2.0 * (hint or 0.0)))
            before, after, open_until, failures = await self._record_failure(
                keys=[self.circuit_key(key)],
                args=[_arg(now), int(threshold), _arg(cooldown), "" if hint is None else _arg(hint), keep],
            )
            view = CircuitView(_STATES[_text(after)], float(_text(open_until)), int(failures))
            return _STATES[_text(before)], view

        return await self._run(
            remote,
            lambda: self.fallback.record_failure(key, now, threshold=threshold, cooldown=cooldown, hint=hint),
        )

    async def record_success(self, key: str) -> tuple[CircuitState, CircuitView]:
        """See :meth:`StateStore.record_success`."""

        async def remote() -> tuple[CircuitState, CircuitView]:
            before = await self._record_success(keys=[self.circuit_key(key)])
            return _STATES[_text(before)], CircuitView("closed", 0.0, 0)

        return await self._run(remote, lambda: self.fallback.record_success(key))

    # -- failing open ---------------------------------------------------------

    async def _run(self, remote: Callable[[], Awaitable[_T]], local: Callable[[], Awaitable[_T]]) -> _T:
        """``remote()`` on Redis, or ``local()`` on the fallback while Redis does not answer."""
        started = time.monotonic()
        if started < self._skip_until:
            return await local()
        try:
            result = await remote()
        except _UNAVAILABLE as exc:
            self._went_down(exc)
            return await local()
        if self.degraded and started >= self._failed_at:
            # Only a call begun after the latest failure proves Redis is back.
            self.degraded = False
            self._skip_until = 0.0
            logger.info("Redis state store answers again: budgets and breakers are shared across processes again")
        return result

    def _went_down(self, exc: BaseException) -> None:
        self._failed_at = time.monotonic()
        self._skip_until = self._failed_at + self.recheck_after
        if not self.degraded:
            self.degraded = True
            logger.warning(
                "Redis state store unreachable (%s: %s): using this process's memory until it answers again",
                type(exc).__name__,
                describe(exc),
            )
