"""Per-tenant rate limits through Flask-Limiter.

Every key of a tenant shares one budget; callers without a valid key are
limited by client address, so keys cannot be guessed at full speed. The limit
strings come from config, so the same code serves the in-process default and
Redis shared by every worker and machine.
"""

import math
import time

from flask import Flask, Response, current_app
from flask_limiter.errors import RateLimitExceeded
from flask_limiter.util import get_remote_address

from .auth import current_principal
from .errors import RateLimited, error_response
from .extensions import limiter

# The sustained rate is enforced over this window, the burst over one second.
SUSTAINED_WINDOW_SECONDS = 5


def rate_limit_key() -> str:
    principal = current_principal()
    if principal is not None:
        return f"tenant:{principal.tenant_id}"
    return f"addr:{get_remote_address()}"


def request_limits() -> str:
    if current_principal() is None:
        return current_app.config["RATE_LIMIT_ANONYMOUS"]
    burst = current_app.config["RATE_LIMIT_BURST"]
    sustained = current_app.config["RATE_LIMIT_SUSTAINED"]
    window = SUSTAINED_WINDOW_SECONDS
    return f"{burst} per 1 second;{sustained * window} per {window} seconds"


def public_limits() -> str:
    return current_app.config["RATE_LIMIT_PUBLIC"]


def seconds_until_reset() -> int:
    """Whole seconds until the breached limit lets a request through again."""
    current = limiter.current_limit
    if current is None:
        return 1
    return max(1, math.ceil(current.reset_at - time.time()))


def _rate_limit_headers(response: Response) -> Response:
    # Flask-Limiter writes Retry-After on every response; it means something
    # only on a 429, where it must be a whole number of seconds of at least 1.
    if response.status_code == 429:
        response.headers["Retry-After"] = str(seconds_until_reset())
        # Flask-Limiter reads the window again to write this header, and a
        # moving window may have slid meanwhile; a refused request had none left.
        response.headers["X-RateLimit-Remaining"] = "0"
    else:
        response.headers.pop("Retry-After", None)
    return response


def _rate_limited(exc: RateLimitExceeded):
    seconds = seconds_until_reset()
    # The SDK reads retry_after_seconds, the MCP client retry_after.
    return error_response(
        RateLimited(
            f"Rate limit exceeded ({exc.description}); retry in {seconds} s.",
            retry_after_seconds=seconds,
            retry_after=seconds,
            headers={"Retry-After": str(seconds)},
        )
    )


def init_rate_limits(app: Flask) -> None:
    # Registered before the limiter's own hook, so it runs after it.
    app.after_request(_rate_limit_headers)
    app.register_error_handler(RateLimitExceeded, _rate_limited)
    limiter.init_app(app)
