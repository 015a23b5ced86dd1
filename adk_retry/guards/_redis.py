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

A store works from any event loop and any thread: a ``redis.asyncio``
client's connections belong to the event loop that opened them (used from
another, they fail with ``RuntimeError: Event loop is closed`` or "attached to
a different loop"), so the store opens one client per event loop it is used
from. ADK's synchronous ``Runner.run()`` runs every turn on a new thread and
loop, and so do two ``asyncio.run()`` calls; each gets its own connections, and
those of a loop that has closed are dropped when the next loop appears.

Redis must never turn a provider hiccup into an outage of its own. When an
operation fails for any reason of the store's own (Redis does not answer, an
error reply, a broken connection), it falls back to a local
:class:`~adk_retry.guards._store.MemoryStore`: it fails open with this process's own
state, logs ONE warning on the ``adk_retry.redis`` logger for the whole
outage, and leaves Redis alone for ``recheck_after`` seconds so a dead server
does not cost a timeout on every call. The first operation that Redis
answers again logs one INFO line and ends the outage.

Example:
    >>> store = RedisStore.from_url("redis://127.0.0.1:6379/0", prefix="myapp:retry:")  # doctest: +SKIP
    >>> await store.take_token("openai/gpt-4o", max_tokens=10)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import asyncio
import math
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

try:
    from redis.asyncio import Redis
    from redis.asyncio.connection import BlockingConnectionPool
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("adk_retry.guards._redis needs the redis package: pip install 'adk-retry[redis]'") from exc

from adk_retry.core._checks import require_seconds, require_type
from adk_retry.core._limit import Reservation
from adk_retry.guards._store import CircuitState, CircuitView, MemoryStore, StateStore
from adk_retry.observability._log import describe, get_logger

__all__ = ["RedisStore"]

logger = get_logger("redis")

_T = TypeVar("_T")

_STATES: dict[str, CircuitState] = {"closed": "closed", "open": "open", "half_open": "half_open"}

# Any error of the store's own, not only a lost connection: an error reply
# (NOREPLICAS, MISCONF when the disk is full, BUSY, NOPERM), a connection left
# on a closed event loop (RuntimeError) or a bug in a script must not replace
# the model's own result either. The store fails open, and the warning it logs
# once per outage names the error. Cancellation (a BaseException) is not
# caught: it belongs to the caller.
_UNAVAILABLE: tuple[type[BaseException], ...] = (Exception,)
_MAX_UNRELEASED = 10_000
"""Slots released while Redis did not answer, kept to release there later; past this, leases free them."""

# Entries a redis-py pool adds to its connections' settings itself, bound to
# that very pool (redis-py 8's maintenance-notification handlers and the
# original timeouts they restore): a pool built from a copy of the settings
# must derive its own.
_POOL_OWNED = frozenset(
    {
        "maint_notifications_pool_handler",
        "oss_cluster_maint_notifications_handler",
        "orig_host_address",
        "orig_socket_timeout",
        "orig_socket_connect_timeout",
    }
)

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
# Returns {state, open_until, failures, allowed, probes}.
_ADMIT = (
    _LUA_HELPERS
    + """
local now = tonumber(ARGV[1])
local c = redis.call('HMGET', KEYS[1], 'failures', 'open_until', 'probing_since', 'probes')
local failures = tonumber(c[1]) or 0
local open_until = tonumber(c[2]) or 0
local probes = tonumber(c[4]) or 0
if open_until == 0 then return {'closed', '0', failures, 1, probes} end
local st = state(open_until, now)
local probing = tonumber(c[3]) or 0
local allowed = 0
if st == 'half_open' and (probing == 0 or now - probing >= tonumber(ARGV[2])) then
  allowed = 1
  redis.call('HSET', KEYS[1], 'probing_since', num(now))
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
end
return {st, num(open_until), failures, allowed, probes}
"""
)

# KEYS[1] circuit hash; ARGV now, threshold, cooldown, hint ('' for none), keep_ms, first_probe, spread.
# The open period is adk_retry.core._breaker.open_period, written out in Lua.
# Returns {state before, state after, open_until, failures, probes}.
_RECORD_FAILURE = (
    _LUA_HELPERS
    + """
local now = tonumber(ARGV[1])
local hint = ARGV[4]
local cap = tonumber(ARGV[3])
local first = tonumber(ARGV[6])
local spread = tonumber(ARGV[7])
local c = redis.call('HMGET', KEYS[1], 'failures', 'open_until', 'probing_since', 'probes')
local failures = (tonumber(c[1]) or 0) + 1
local open_until = tonumber(c[2]) or 0
local probing = tonumber(c[3]) or 0
local probes = tonumber(c[4]) or 0
local before = state(open_until, now)
local h = 0
if hint ~= '' then h = tonumber(hint) end
if before == 'half_open' or (before == 'closed' and failures >= tonumber(ARGV[2])) then
  if before == 'half_open' then probes = probes + 1 else probes = 0 end
  local period = math.min(cap, first * 2 ^ math.min(probes, 64)) * (1.0 - spread)
  open_until = math.max(open_until, now + math.max(period, h))
  probing = 0
elseif h > 0 then
  open_until = math.max(open_until, now + h)
  probing = 0
end
redis.call('HSET', KEYS[1], 'failures', failures, 'open_until', num(open_until), 'probing_since', num(probing),
  'probes', probes)
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[5]) then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
return {before, state(open_until, now), num(open_until), failures, probes}
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

# KEYS[1] circuit hash; ARGV since. Frees the probe slot only if that probe still holds it.
_RELEASE_PROBE = """
local probing = tonumber(redis.call('HGET', KEYS[1], 'probing_since'))
if probing and probing == tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'probing_since', '0')
  return 1
end
return 0
"""
# Rate limits: a hash per scope with the fields of adk_retry.core._limit.RateState;
# the scripts are that module's reserve() and feedback(), step for step, so a
# value computed here is the very float MemoryStore computes.
_RATE_FIELDS = (
    "tokens", "updated", "ttokens", "tupdated", "not_before", "spread",
    "rate", "w_max", "k", "last_fail", "measured", "count", "window",
)  # fmt: skip
_LUA_RATE = (
    _LUA_HELPERS
    + """
local function refill(tokens, updated, now, rate, capacity)
  if updated == 0 then return capacity end
  return math.min(capacity, tokens + math.max(0, now - updated) * rate)
end
local F = {'tokens', 'updated', 'ttokens', 'tupdated', 'not_before', 'spread',
           'rate', 'w_max', 'k', 'last_fail', 'measured', 'count', 'window'}
local function load(key)
  local raw = redis.call('HMGET', key, unpack(F))
  local s = {}
  for i, name in ipairs(F) do s[name] = tonumber(raw[i]) or 0 end
  return s
end
local function save(key, s, ttl_ms)
  local flat = {}
  for _, name in ipairs(F) do flat[#flat + 1] = name; flat[#flat + 1] = num(s[name]) end
  redis.call('HSET', key, unpack(flat))
  redis.call('PEXPIRE', key, ttl_ms)
end
"""
)

# KEYS[1] rate hash; ARGV now, rate, burst, token_rate, cost, max_wait, u, adaptive, ttl_ms, horizon.
# Returns {admitted, wait, interval}.
_RESERVE = (
    _LUA_RATE
    + """
local now, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local token_rate, cost, max_wait = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local u, adaptive = tonumber(ARGV[7]), ARGV[8] == '1'
local s = load(KEYS[1])
if adaptive and s.rate <= 0 then
  if rate <= 0 then s.rate = 5.0 else s.rate = math.min(rate, 5.0) end
end
local start = now
if s.not_before > now then start = s.not_before + u * s.spread end
local requests = rate
if adaptive and s.rate > 0 then
  if rate <= 0 then requests = s.rate else requests = math.min(rate, s.rate) end
end
local function ready(tokens, updated, rate, capacity, need)
  local base = now
  if updated ~= 0 then base = math.max(now, updated) end
  tokens = refill(tokens, updated, base, rate, capacity)
  if tokens >= need then return tokens, base, now end
  return tokens, base, base + (need - tokens) / rate
end
local tokens, base, ttokens, tbase, at = s.tokens, now, s.ttokens, now, now
if requests > 0 then
  tokens, base, at = ready(s.tokens, s.updated, requests, burst, 1)
  start = math.max(start, at)
end
if token_rate > 0 then
  ttokens, tbase, at = ready(s.ttokens, s.tupdated, token_rate, token_rate, math.min(cost, token_rate))
  start = math.max(start, at)
end
local wait = start - now
local interval = 0
if requests > 0 then interval = 1 / requests end
if wait > max_wait or wait > tonumber(ARGV[10]) then return {0, num(wait), num(interval)} end
if requests > 0 then s.tokens = tokens - 1; s.updated = base end
if token_rate > 0 then s.ttokens = ttokens - cost; s.tupdated = tbase end
if requests > 0 or token_rate > 0 then save(KEYS[1], s, ARGV[9]) end
return {1, num(wait), num(interval)}
"""
)

# KEYS[1] rate hash; ARGV now, throttled, sent_at, adaptive, hint ('' for none), rate, burst,
# tokens, ttl_ms. Returns the learnt rate afterwards.
_RATE_FEEDBACK = (
    _LUA_RATE
    + """
local now, throttled, sent_at = tonumber(ARGV[1]), ARGV[2] == '1', tonumber(ARGV[3])
local adaptive, rate, burst, spent = ARGV[4] == '1', tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local hint = 0
if ARGV[5] ~= '' then hint = tonumber(ARGV[5]) end
local s = load(KEYS[1])
if spent ~= 0 then s.ttokens = s.ttokens - spent end
if throttled and hint > 0 then
  local learnt = 0
  if adaptive and s.rate > 0 then learnt = s.rate end
  local paced
  if rate <= 0 then paced = learnt elseif learnt == 0 then paced = rate else paced = math.min(rate, learnt) end
  local until_ = now + hint
  if until_ > s.not_before then
    s.not_before = until_; s.spread = hint
    if paced > 0 then
      s.tokens = math.min(1, refill(s.tokens, s.updated, now, paced, burst)); s.updated = until_
    end
  end
end
local function measured_rate()
  if s.measured > 0 then return s.measured end
  if s.window ~= 0 and s.count ~= 0 then return s.count / math.max(0.25, now - s.window) end
  return 0
end
if adaptive then
  if throttled then
    if not (s.rate > 0 and sent_at < s.last_fail) then
      local measured = measured_rate()
      local in_use = s.rate
      if in_use <= 0 then
        if rate > 0 then in_use = rate else in_use = 5.0 end
      end
      local admitted = 0
      if measured > 0 then admitted = math.min(measured, in_use) end
      local new
      if s.w_max ~= 0 then
        new = math.max(0.5, in_use * 0.7, admitted * 0.95)
      else
        new = math.max(0.5, math.min(in_use * 0.7, math.max(in_use * 0.5, admitted * 0.95)))
      end
      if rate > 0 then new = math.min(new, rate) end
      local w_max = in_use
      if admitted >= new then w_max = admitted end
      s.k = ((w_max - new) / 0.4) ^ (1 / 3)
      s.rate = new; s.w_max = w_max; s.last_fail = now
    end
  else
    local window = math.floor(now / 0.25) * 0.25
    if s.window == 0 then
      s.count = 1; s.window = window
    elseif window > s.window then
      local current = (s.count + 1) / (window - s.window)
      s.measured = current * 0.8 + s.measured * (1 - 0.8); s.count = 0; s.window = window
    else
      s.count = s.count + 1
    end
    if s.rate > 0 then
      local new = nil
      if s.w_max == 0 then
        if refill(s.tokens, s.updated, now, s.rate, burst) < 1 then
          local measured = measured_rate()
          local ceiling = math.huge
          if measured > 0 then ceiling = 2.0 * measured end
          new = math.max(s.rate, math.min(s.rate + 3.0, ceiling))
        end
      else
        local measured = measured_rate()
        local ceiling = math.huge
        if measured > 0 then ceiling = 2 * measured end
        new = math.max(s.rate, math.min(0.4 * ((now - s.last_fail) - s.k) ^ 3 + s.w_max, ceiling))
      end
      if new ~= nil then
        if rate > 0 then new = math.min(new, rate) end
        s.rate = math.max(0.5, new)
      end
    end
  end
end
save(KEYS[1], s, ARGV[9])
return num(s.rate)
"""
)

# KEYS[1] rate hash. Returns {not_before, spread}.
_HOLD = (
    _LUA_HELPERS
    + """
local h = redis.call('HMGET', KEYS[1], 'not_before', 'spread')
return {num(tonumber(h[1]) or 0), num(tonumber(h[2]) or 0)}
"""
)

# KEYS[1] slots sorted set (holder -> lease end); ARGV now, holder, limit, lease end, ttl_ms.
_ACQUIRE_SLOT = (
    _LUA_HELPERS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[5]) then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
return 1
"""
)


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


def _cloner(client: Redis) -> Callable[[], Redis]:
    """A function that builds new clients with ``client``'s connection settings, unused pool included.

    The copy is taken now, so later changes to ``client`` do not reach it.
    """
    pool = client.connection_pool
    pool_class = type(pool)
    connection_class = pool.connection_class
    settings = {key: value for key, value in pool.connection_kwargs.items() if key not in _POOL_OWNED}
    if isinstance(pool, BlockingConnectionPool):
        settings["timeout"] = pool.timeout
    max_connections = pool.max_connections
    client_class = type(client)

    def build() -> Redis:
        new_pool = pool_class(connection_class=connection_class, max_connections=max_connections, **settings)
        return client_class.from_pool(new_pool)  # the client owns (and closes) its pool

    return build


def _abandon(client: Redis) -> None:
    """Drop ``client``, whose event loop has closed, without awaiting anything.

    Its connections cannot be closed the polite way any more (that needs their
    loop); shutting their sockets down tells Redis at once that they are gone,
    and the sockets themselves are freed with the client.
    """
    pool = getattr(client, "connection_pool", None)
    connections = [*getattr(pool, "_available_connections", ()), *getattr(pool, "_in_use_connections", ())]
    for connection in connections:
        writer = getattr(connection, "_writer", None)
        if writer is None:
            continue
        try:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except Exception:  # already closed, or not a socket: nothing left to tell Redis
            pass


class RedisStore:
    """Budget and breaker state in Redis, shared by every process that uses it.

    Args:
        client: a ``redis.asyncio.Redis``, or a function with no arguments
            that builds one. A client's connections belong to one event loop,
            so the store builds its own client for every event loop it is
            used from: with the function, or with a copy of the given
            client's connection settings (the given client itself, kept as
            :attr:`client`, runs no commands for the store). Another client
            with ``register_script`` (a cluster client) cannot be copied and
            is used as it is, from whichever loop calls. Give it short
            socket timeouts and no retries of its own (as :meth:`from_url`
            does): while Redis hangs, every operation waits for it until the
            timeout says it is down.
        prefix: put before every key, so several applications can share one Redis.
        ttl: seconds every key lives after its last write (a circuit's key at
            least twice its open time), so abandoned buckets and circuits
            expire. An expired bucket is full again; an expired circuit is closed.
        fallback: the store used while Redis does not answer (default: a fresh
            :class:`~adk_retry.guards._store.MemoryStore`). Its state is this process's
            alone, is not merged into Redis afterwards, and is kept for the
            next outage; only the concurrency slots released meanwhile are
            released in Redis too, once it answers (a slot taken there before
            would otherwise stay taken until its lease ran out).
        recheck_after: seconds to leave Redis alone after a failure before
            trying it again; meanwhile operations go to ``fallback`` at once.

    Attributes:
        client: the client given (or the function's first one), for your own
            commands; the store's commands go through its per-loop clients.
        degraded: True while Redis is unreachable and ``fallback`` answers.

    Raises:
        TypeError: ``client`` is neither a Redis client nor a function.
        ValueError: ``ttl`` or ``recheck_after`` is out of range.

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
        client: Redis | Callable[[], Redis],
        *,
        prefix: str = "adk_retry:",
        ttl: float = 3600.0,
        fallback: StateStore | None = None,
        recheck_after: float = 1.0,
    ) -> None:
        require_type("RedisStore", "prefix", prefix, str)
        if fallback is not None and not isinstance(fallback, StateStore):
            raise TypeError(f"RedisStore: fallback must be a StateStore, got {type(fallback).__name__}: {fallback!r}")
        # Checked before a client is built from a function: nothing is made for a bad store.
        ttl = require_seconds("RedisStore", "ttl", ttl, zero_ok=False)
        recheck_after = require_seconds("RedisStore", "recheck_after", recheck_after, zero_ok=True)
        if isinstance(client, Redis):
            self.client: Redis = client
            self._build: Callable[[], Redis] = _cloner(client)
        elif callable(getattr(client, "register_script", None)):
            # Not a redis.asyncio.Redis (a cluster client, say): it cannot be
            # copied, so it serves every loop as it is, and an error it raises
            # on another loop fails open like any other.
            shared: Any = client
            self.client = shared
            self._build = lambda: shared
        elif callable(client):
            self._build = client
            self.client = client()
        else:
            hint = "; for a URL use RedisStore.from_url(...)" if isinstance(client, str) else ""
            raise TypeError(
                "RedisStore: client must be a redis.asyncio.Redis or a function that builds one, "
                f"got {type(client).__name__}{hint}"
            )
        self.prefix = prefix
        self.ttl = ttl
        self.fallback: StateStore = fallback if fallback is not None else MemoryStore()
        self.recheck_after = recheck_after
        self.degraded = False
        self._skip_until = 0.0  # monotonic time before which Redis is not tried
        self._failed_at = -math.inf  # monotonic time of the latest failure
        self._unreleased: set[tuple[str, str]] = set()  # (scope, holder): slots released while Redis was away
        # One client per event loop. Its values hold their loop (through their
        # connections), so a WeakKeyDictionary would never let a loop go; loops
        # that have closed are swept out instead, whenever a new loop appears.
        self._clients: dict[asyncio.AbstractEventLoop, Redis] = {}
        self._lock = threading.Lock()  # for _clients and the outage's state: threads share the store
        # The scripts are registered once (for their SHA) and run on whichever
        # loop's client the caller's loop has.
        self._take_token = self.client.register_script(_TAKE_TOKEN)
        self._refund = self.client.register_script(_REFUND)
        self._tokens = self.client.register_script(_TOKENS)
        self._admit = self.client.register_script(_ADMIT)
        self._record_failure = self.client.register_script(_RECORD_FAILURE)
        self._record_success = self.client.register_script(_RECORD_SUCCESS)
        self._release_probe = self.client.register_script(_RELEASE_PROBE)
        self._reserve = self.client.register_script(_RESERVE)
        self._rate_feedback = self.client.register_script(_RATE_FEEDBACK)
        self._hold = self.client.register_script(_HOLD)
        self._acquire_slot = self.client.register_script(_ACQUIRE_SLOT)

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
        """A store whose clients (one per event loop) connect to ``url`` (``redis://``, ``rediss://`` or ``unix://``).

        The clients get short timeouts unless ``client_kwargs`` say otherwise:
        ``socket_connect_timeout=0.5`` and ``socket_timeout=0.5`` seconds, and
        no retries of their own (``retry=Retry(NoBackoff(), 0)``). So a Redis
        that hangs costs one operation at most about 0.5 s before it falls back
        to memory, and the operations of the next ``recheck_after`` seconds nothing.

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

        def build() -> Redis:
            return Redis.from_url(url, **client_kwargs)

        try:
            build()  # a bad URL fails here, at construction, not at the first call
        except ValueError as exc:
            raise ValueError(f"invalid Redis URL {_mask(url)!r}: {exc}") from exc
        return cls(build, prefix=prefix, ttl=ttl, fallback=fallback, recheck_after=recheck_after)

    async def aclose(self) -> None:
        """Close the store's clients and :attr:`client`; the store opens new ones if used again.

        The client of the running event loop is closed here; one of another
        loop still running is closed on that loop, and one of a loop that has
        closed is dropped.
        """
        current = asyncio.get_running_loop()
        with self._lock:
            clients, self._clients = self._clients, {}
        for loop, client in clients.items():
            if loop is current:
                await client.aclose()
            elif loop.is_closed():
                _abandon(client)
            else:
                try:
                    asyncio.run_coroutine_threadsafe(client.aclose(), loop)
                except RuntimeError:  # the loop closed meanwhile
                    _abandon(client)
        try:
            await self.client.aclose()
        except RuntimeError:  # used (by its owner) on a loop that has closed since
            _abandon(self.client)

    def _redis(self) -> Redis:
        """This event loop's client (built on the loop's first operation)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            with self._lock:
                client = self._clients.get(loop)
                if client is None:
                    for closed in [other for other in self._clients if other.is_closed()]:
                        stale = self._clients.pop(closed)
                        if stale is not self.client:
                            _abandon(stale)
                    client = self._clients[loop] = self._build()
        return client

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

    def rate_key(self, key: str) -> str:
        """The Redis key (a hash) of rate limit ``key``.

        Example:
            >>> import redis.asyncio
            >>> RedisStore(redis.asyncio.Redis()).rate_key("model:openai/gpt-4o")
            'adk_retry:rate:model:openai/gpt-4o'
        """
        return f"{self.prefix}rate:{key}"

    def slots_key(self, key: str) -> str:
        """The Redis key (a sorted set of holders) of concurrency limit ``key``.

        Example:
            >>> import redis.asyncio
            >>> RedisStore(redis.asyncio.Redis()).slots_key("model:openai/gpt-4o")
            'adk_retry:slots:model:openai/gpt-4o'
        """
        return f"{self.prefix}slots:{key}"

    # -- the StateStore operations ------------------------------------------

    async def take_token(self, key: str, *, max_tokens: float) -> bool:
        """See :meth:`StateStore.take_token`."""

        async def remote() -> bool:
            reply = await self._take_token(
                keys=[self.bucket_key(key)], args=[_arg(max_tokens), _ms(self.ttl)], client=self._redis()
            )
            return bool(int(reply))

        return await self._run(remote, lambda: self.fallback.take_token(key, max_tokens=max_tokens))

    async def refund(self, key: str, amount: float, *, max_tokens: float) -> None:
        """See :meth:`StateStore.refund`."""

        async def remote() -> None:
            await self._refund(
                keys=[self.bucket_key(key)],
                args=[_arg(amount), _arg(max_tokens), _ms(self.ttl)],
                client=self._redis(),
            )

        await self._run(remote, lambda: self.fallback.refund(key, amount, max_tokens=max_tokens))

    async def tokens(self, key: str, *, max_tokens: float) -> float:
        """See :meth:`StateStore.tokens`."""

        async def remote() -> float:
            reply = await self._tokens(keys=[self.bucket_key(key)], args=[_arg(max_tokens)], client=self._redis())
            return float(_text(reply))

        return await self._run(remote, lambda: self.fallback.tokens(key, max_tokens=max_tokens))

    async def admit(self, key: str, now: float, *, probe_timeout: float) -> CircuitView:
        """See :meth:`StateStore.admit`."""

        async def remote() -> CircuitView:
            state, open_until, failures, allowed, probes = await self._admit(
                keys=[self.circuit_key(key)],
                args=[_arg(now), _arg(probe_timeout), _ms(self.ttl)],
                client=self._redis(),
            )
            return CircuitView(
                _STATES[_text(state)], float(_text(open_until)), int(failures), bool(int(allowed)), int(probes)
            )

        return await self._run(remote, lambda: self.fallback.admit(key, now, probe_timeout=probe_timeout))

    async def record_failure(
        self,
        key: str,
        now: float,
        *,
        threshold: int,
        cooldown: float,
        hint: float | None,
        first_probe: float | None = None,
        spread: float = 0.0,
    ) -> tuple[CircuitState, CircuitView]:
        """See :meth:`StateStore.record_failure`."""
        first = cooldown if first_probe is None else first_probe

        async def remote() -> tuple[CircuitState, CircuitView]:
            keep = _ms(max(self.ttl, 2.0 * cooldown, 2.0 * (hint or 0.0)))
            before, after, open_until, failures, probes = await self._record_failure(
                keys=[self.circuit_key(key)],
                args=[
                    _arg(now),
                    int(threshold),
                    _arg(cooldown),
                    "" if hint is None else _arg(hint),
                    keep,
                    _arg(first),
                    _arg(spread),
                ],
                client=self._redis(),
            )
            view = CircuitView(_STATES[_text(after)], float(_text(open_until)), int(failures), True, int(probes))
            return _STATES[_text(before)], view

        return await self._run(
            remote,
            lambda: self.fallback.record_failure(
                key, now, threshold=threshold, cooldown=cooldown, hint=hint, first_probe=first_probe, spread=spread
            ),
        )

    async def release_probe(self, key: str, since: float) -> None:
        """See :meth:`StateStore.release_probe`."""

        async def remote() -> None:
            await self._release_probe(keys=[self.circuit_key(key)], args=[_arg(since)], client=self._redis())

        await self._run(remote, lambda: self.fallback.release_probe(key, since))

    async def record_success(self, key: str) -> tuple[CircuitState, CircuitView]:
        """See :meth:`StateStore.record_success`."""

        async def remote() -> tuple[CircuitState, CircuitView]:
            before = await self._record_success(keys=[self.circuit_key(key)], client=self._redis())
            return _STATES[_text(before)], CircuitView("closed", 0.0, 0)

        return await self._run(remote, lambda: self.fallback.record_success(key))

    async def reserve(
        self,
        key: str,
        now: float,
        *,
        rate: float,
        burst: float,
        token_rate: float,
        cost: float,
        max_wait: float,
        u: float,
        adaptive: bool,
        horizon: float,
    ) -> Reservation:
        """See :meth:`StateStore.reserve`."""

        async def remote() -> Reservation:
            args = [_arg(now), _arg(rate), _arg(burst), _arg(token_rate), _arg(cost)]
            args += [_arg(max_wait), _arg(u), "1" if adaptive else "0", str(_ms(self.ttl))]
            args.append(_arg(min(horizon, max_wait)))  # finite: Lua reads no "inf"
            admitted, wait, interval = await self._reserve(keys=[self.rate_key(key)], args=args, client=self._redis())
            return Reservation(bool(int(admitted)), float(_text(wait)), float(_text(interval)))

        return await self._run(
            remote,
            lambda: self.fallback.reserve(
                key,
                now,
                rate=rate,
                burst=burst,
                token_rate=token_rate,
                cost=cost,
                max_wait=max_wait,
                u=u,
                adaptive=adaptive,
                horizon=horizon,
            ),
        )

    async def rate_feedback(
        self,
        key: str,
        now: float,
        *,
        throttled: bool,
        sent_at: float,
        adaptive: bool,
        hint: float | None,
        rate: float,
        burst: float,
        tokens: float,
    ) -> float:
        """See :meth:`StateStore.rate_feedback`."""

        async def remote() -> float:
            args = [_arg(now), "1" if throttled else "0", _arg(sent_at), "1" if adaptive else "0"]
            args += ["" if hint is None else _arg(hint), _arg(rate), _arg(burst), _arg(tokens), str(_ms(self.ttl))]
            reply = await self._rate_feedback(keys=[self.rate_key(key)], args=args, client=self._redis())
            return float(_text(reply))

        return await self._run(
            remote,
            lambda: self.fallback.rate_feedback(
                key,
                now,
                throttled=throttled,
                sent_at=sent_at,
                adaptive=adaptive,
                hint=hint,
                rate=rate,
                burst=burst,
                tokens=tokens,
            ),
        )

    async def hold(self, key: str) -> tuple[float, float]:
        """See :meth:`StateStore.hold`."""

        async def remote() -> tuple[float, float]:
            not_before, spread = await self._hold(keys=[self.rate_key(key)], client=self._redis())
            return float(_text(not_before)), float(_text(spread))

        return await self._run(remote, lambda: self.fallback.hold(key))

    async def acquire_slot(self, key: str, holder: str, now: float, *, limit: int, lease: float) -> bool:
        """See :meth:`StateStore.acquire_slot`."""

        async def remote() -> bool:
            args = [_arg(now), holder, str(int(limit)), _arg(now + lease), str(_ms(max(self.ttl, 2.0 * lease)))]
            reply = await self._acquire_slot(keys=[self.slots_key(key)], args=args, client=self._redis())
            return bool(int(reply))

        return await self._run(remote, lambda: self.fallback.acquire_slot(key, holder, now, limit=limit, lease=lease))

    async def release_slot(self, key: str, holder: str) -> None:
        """See :meth:`StateStore.release_slot`."""

        async def remote() -> None:
            await self._redis().zrem(self.slots_key(key), holder)

        async def local() -> None:
            # The slot may be Redis's (taken before it stopped answering): a partition keeps it
            # there until its lease runs out, so it is released there too once Redis answers.
            with self._lock:
                if len(self._unreleased) < _MAX_UNRELEASED:
                    self._unreleased.add((key, holder))

        # Released in the fallback whatever Redis does: a slot taken there during an outage
        # would otherwise hold its scope in the next outage until its lease ran out.
        await self.fallback.release_slot(key, holder)
        await self._run(remote, local)

    async def _release_late(self) -> None:
        """Release in Redis the slots whose release went to the fallback while it did not answer."""
        with self._lock:
            late, self._unreleased = list(self._unreleased), set()
        client = self._redis()
        for done, (key, holder) in enumerate(late):
            try:
                await client.zrem(self.slots_key(key), holder)
            except BaseException:
                with self._lock:  # Redis went away again (or we were cancelled): keep the rest for later
                    self._unreleased.update(late[done:])
                raise

    # -- failing open ---------------------------------------------------------

    async def _run(self, remote: Callable[[], Awaitable[_T]], local: Callable[[], Awaitable[_T]]) -> _T:
        """``remote()`` on Redis, or ``local()`` on the fallback while Redis does not answer."""
        started = time.monotonic()
        if started < self._skip_until:
            return await local()
        try:
            if self._unreleased:
                await self._release_late()  # first: the operation may be the acquire they block
            result = await remote()
        except _UNAVAILABLE as exc:
            self._went_down(exc)
            return await local()
        if self.degraded:
            self._came_back(started)
        return result

    def _came_back(self, started: float) -> None:
        with self._lock:  # threads share the store: one INFO line per outage
            # Only a call begun after the latest failure proves Redis is back.
            if not self.degraded or started < self._failed_at:
                return
            self.degraded = False
            self._skip_until = 0.0
        logger.info("Redis state store answers again: budgets and breakers are shared across processes again")

    def _went_down(self, exc: BaseException) -> None:
        with self._lock:  # threads share the store: one warning per outage
            self._failed_at = time.monotonic()
            self._skip_until = self._failed_at + self.recheck_after
            first = not self.degraded
            self.degraded = True
        if first:
            logger.warning(
                "Redis state store unreachable (%s: %s): using this process's memory until it answers again",
                type(exc).__name__,
                describe(exc),
            )
