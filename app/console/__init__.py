"""The web console at /: sign-in with an API key, then the tenant's build
cache, artifacts and keys as server-rendered pages (views.py)."""

from flask import Flask

from . import filters, session
from .views import bp


def init_app(app: Flask) -> None:
    """Load console sessions ahead of the rate limiter (call before
    ratelimit.init_app), and register the pages."""
    session.init_app(app)
    filters.init_app(app)
    app.register_blueprint(bp)
