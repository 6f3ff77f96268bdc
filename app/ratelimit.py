"""Rate limits: one budget per tenant across every route, kept in Flask-Limiter's storage.

Flask-Limiter is bound to each app for what it configures: the storage
(RATELIMIT_STORAGE_URI), the strategy (RATELIMIT_STRATEGY) and the switch
(RATELIMIT_ENABLED). The limits come from config, and `RateLimits.charge` is
the one place a request is counted: the Flask path calls it from a
before_request hook, the cache read path (app/api/cache_reads.py) before
Flask, and both count under the same keys.

On Redis with the moving window (the default), one Lua script over limits'
own moving-window lists tests every limit, takes an entry from each only when
all have room, and returns the figures for the headers: one round trip, where
Flask-Limiter's check costs one per limit and another for the headers. Other
storages and strategies take the same steps through the strategy's API.
"""

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse_many
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from . import metrics
from .auth import current_principal
from .errors import RateLimited, ServiceUnavailable

# The sustained rate is enforced over this window, the burst over one second.
SUSTAINED_WINDOW_SECONDS = 5
EXTENSION = "hoard_rate_limits"
# Storage URIs limits serves with redis-py, whose timeouts Hoard sets.
REDIS_SCHEMES = ("redis://", "rediss://", "redis+unix://", "redis+sentinel://", "redis+cluster://")

# Route policies, set on view functions by the decorators below.
EXEMPT = "exempt"
PUBLIC = "public"

# KEYS: one list per limit, in limits' moving-window layout (entry timestamps,
# newest first, at most `amount` long; limits reads it the same way).
# ARGV: now, then amount and expiry per key. Returns: allowed (1/0), then for
# each key the entries inside its window and the oldest of them.
CHARGE_SCRIPT = """
local now = tonumber(ARGV[1])
local allowed = 1
for i, key in ipairs(KEYS) do
    local amount = tonumber(ARGV[2 * i])
    local expiry = tonumber(ARGV[2 * i + 1])
    local entry = redis.call('lindex', key, amount - 1)
    if entry and tonumber(entry) >= now - expiry then
        allowed = 0
    end
end
local result = {allowed}
for i, key in ipairs(KEYS) do
    local amount = tonumber(ARGV[2 * i])
    local expiry = tonumber(ARGV[2 * i + 1])
    if allowed == 1 then
        redis.call('lpush', key, ARGV[1])
        redis.call('expire', key, expiry)
    end
    -- The entries still inside the window: a binary search, as the list is
    -- newest first. Older ones are dropped, so the list never holds more
    -- than the window does, however high the limit.
    local start = now - expiry
    local low, high, index = 0, math.min(redis.call('llen', key), amount) - 1, -1
    while low <= high do
        local mid = math.floor((low + high) / 2)
        if tonumber(redis.call('lindex', key, mid)) >= start then
            index = mid
            low = mid + 1
        else
            high = mid - 1
        end
    end
    if index >= 0 then
        redis.call('ltrim', key, 0, index)
        result[#result + 1] = index + 1
        result[#result + 1] = redis.call('lindex', key, index)
    else
        redis.call('del', key)
        result[#result + 1] = 0
        result[#result + 1] = ARGV[1]
    end
end
return result
"""


@dataclass(frozen=True)
class Outcome:
    """What charging a request decided, and the limit its headers report."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: float

    def retry_after(self) -> int:
        """Whole seconds until the limit lets a request through again."""
        return max(1, math.ceil(self.reset_at - time.time()))

    def headers(self) -> list[tuple[str, str]]:
        headers = [
            ("X-RateLimit-Limit", str(self.limit)),
            ("X-RateLimit-Remaining", str(self.remaining if self.allowed else 0)),
            ("X-RateLimit-Reset", str(math.ceil(self.reset_at))),
        ]
        if not self.allowed:
            headers.append(("Retry-After", str(self.retry_after())))
        return headers

    def refusal(self) -> RateLimited:
        seconds = self.retry_after()
        # The SDK reads retry_after_seconds, the MCP client retry_after.
        return RateLimited(
            f"Rate limit exceeded; retry in {seconds} s.", retry_after_seconds=seconds, retry_after=seconds
        )


class RateLimits:
    """The app's limits, charged against Flask-Limiter's storage and strategy."""

    def __init__(self, app: Flask):
        config = app.config
        options = {}
        if config["RATELIMIT_STORAGE_URI"].startswith(REDIS_SCHEMES):
            timeout = config["RATELIMIT_REDIS_TIMEOUT_SECONDS"]
            options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        self.limiter = Limiter(key_func=get_remote_address, headers_enabled=False, storage_options=options)
        self.limiter.init_app(app)
        self.enabled = bool(config["RATELIMIT_ENABLED"])
        burst, sustained = config["RATE_LIMIT_BURST"], config["RATE_LIMIT_SUSTAINED"]
        window = SUSTAINED_WINDOW_SECONDS
        tenant = f"{burst} per 1 second;{sustained * window} per {window} seconds"
        self.tenant_limits = tuple(parse_many(tenant))
        self.anonymous_limits = tuple(parse_many(config["RATE_LIMIT_ANONYMOUS"]))
        self.public_limits = tuple(parse_many(config["RATE_LIMIT_PUBLIC"]))
        if not self.enabled:
            return
        strategy = config["RATELIMIT_STRATEGY"]
        # Each strategy keeps its own data shape (a list for the moving
        # window, a counter for the fixed one): the strategy is part of every
        # key, so switching it on a live Redis never reads the other's keys.
        self._prefix = ("hoard", strategy)
        self._storage = self.limiter.storage
        self._strategy = self.limiter.limiter
        self._script = None
        if isinstance(self._storage, RedisStorage) and type(self._strategy) is MovingWindowRateLimiter:
            self._script = self._storage.get_connection().register_script(CHARGE_SCRIPT)
        self._lock = threading.Lock()

    @property
    def in_process(self) -> bool:
        """Whether the counts live in this process only (memory://)."""
        return self.enabled and self._storage.__class__.__name__ == "MemoryStorage"

    @property
    def shared_store(self) -> bool:
        """Whether the counts live in a store other processes share (Redis)."""
        return self.enabled and not self.in_process

    def store_answers(self) -> bool:
        """Whether the shared store answers; every charged request needs it."""
        # limits' storages catch their client's errors and answer False.
        return bool(self._storage.check())

    def charge_tenant(self, tenant_id: str) -> Outcome | None:
        return _counted(self.charge(f"tenant:{tenant_id}", self.tenant_limits), "tenant")

    def charge_anonymous(self, address: str | None) -> Outcome | None:
        return _counted(self.charge(f"addr:{address}", self.anonymous_limits), "anonymous")

    def charge_public(self, address: str | None) -> Outcome | None:
        return _counted(self.charge(f"public:{address}", self.public_limits), "public")

    def charge(self, identity: str, limits: tuple[RateLimitItem, ...]) -> Outcome | None:
        """Count one request against every limit, or refuse it and count nothing."""
        if not self.enabled or not limits:
            return None
        # Braces make one Redis Cluster hash slot of an identity's keys, which
        # a script touching several keys needs.
        identifiers = (*self._prefix, "{" + identity + "}")
        try:
            if self._script is not None:
                return self._charge_in_redis(identifiers, limits)
            return self._charge_with_strategy(identifiers, limits)
        except RedisError:
            raise ServiceUnavailable("The rate-limit store is unreachable; try again shortly.") from None

    def _charge_in_redis(self, identifiers: tuple, limits: tuple[RateLimitItem, ...]) -> Outcome:
        now = time.time()
        keys = [self._storage.prefixed_key(item.key_for(*identifiers)) for item in limits]
        args = [repr(now)]
        for item in limits:
            args += [item.amount, item.get_expiry()]
        reply = self._script(keys=keys, args=args)
        windows = [
            (item, int(reply[1 + 2 * i]), float(reply[2 + 2 * i]) + item.get_expiry())
            for i, item in enumerate(limits)
        ]
        allowed = bool(reply[0])
        # The counts include this request when it was allowed.
        return _outcome(allowed, [(item, item.amount - count, reset) for item, count, reset in windows])

    def _charge_with_strategy(self, identifiers: tuple, limits: tuple[RateLimitItem, ...]) -> Outcome:
        strategy = self._strategy
        with self._lock:
            allowed = all(strategy.test(item, *identifiers) for item in limits)
            if allowed:
                for item in limits:
                    allowed = strategy.hit(item, *identifiers) and allowed
            windows = []
            for item in limits:
                stats = strategy.get_window_stats(item, *identifiers)
                windows.append((item, stats.remaining, stats.reset_time))
        return _outcome(allowed, windows)


def _counted(outcome: Outcome | None, limit: str) -> Outcome | None:
    if outcome is not None and not outcome.allowed:
        metrics.rate_limited(limit)
    return outcome


def _outcome(allowed: bool, windows: list[tuple[RateLimitItem, int, float]]) -> Outcome:
    """The figures for the headers. The limit is the first window's, the
    requests per second the contract reports; the remaining count and the
    reset are those of the window with the least room left, so a client that
    paces itself by them stays inside every window. A refused request reports,
    of the windows with no room left, the one that frees up last."""
    if allowed:
        _, remaining, reset_at = min(windows, key=lambda window: window[1])
    else:
        full = [window for window in windows if window[1] <= 0] or windows
        _, remaining, reset_at = max(full, key=lambda window: window[2])
    return Outcome(
        allowed=allowed, limit=windows[0][0].amount, remaining=max(0, remaining), reset_at=reset_at
    )


def rate_limits(app: Flask | None = None) -> RateLimits:
    return (app or current_app).extensions[EXTENSION]


def exempt(view: Callable) -> Callable:
    """Never limited (health, the OpenAPI document)."""
    view.rate_limit_policy = EXEMPT
    return view


def public(view: Callable) -> Callable:
    """Reached without a key (signed URLs, public links): limited per client
    address by RATE_LIMIT_PUBLIC."""
    view.rate_limit_policy = PUBLIC
    return view


def exempt_when(holds: Callable[[], bool]) -> Callable[[Callable], Callable]:
    """Not limited when `holds()` (the operator's scraper showing its token),
    so it is served while Redis is down; otherwise limited as any keyless
    request, which bounds guessing."""

    def mark(view: Callable) -> Callable:
        view.rate_limit_policy = holds
        return view

    return mark


def _charge_request() -> None:
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    policy = getattr(view, "rate_limit_policy", None)
    if policy == EXEMPT or (callable(policy) and policy()):
        return
    limits = rate_limits()
    if policy == PUBLIC:
        outcome = limits.charge_public(get_remote_address())
    elif (principal := current_principal()) is not None:
        outcome = limits.charge_tenant(principal.tenant_id)
    else:
        outcome = limits.charge_anonymous(get_remote_address())
    g.rate_limit = outcome
    if outcome is not None and not outcome.allowed:
        raise outcome.refusal()


def _add_headers(response: Response) -> Response:
    outcome = g.get("rate_limit")
    if outcome is not None:
        for name, value in outcome.headers():
            response.headers[name] = value
    return response


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION] = RateLimits(app)
    app.before_request(_charge_request)
    app.after_request(_add_headers)
