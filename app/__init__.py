"""Hoard: a self-hosted build cache and artifact store."""

from flask import Flask
from flask.sessions import SessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from config import Config

from . import cli, headers, ratelimit, request_counter, transactions
from .api import account_v1, artifacts_v1, cache_http, cache_nx, cache_v8, docs, public, sessions_v1
from .api.cache_reads import CacheReads
from .errors import register_error_handlers
from .extensions import db, migrate
from .fast_input import FastInputMiddleware
from .storage import init_storage


class NoCookieSessions(SessionInterface):
    """Callers authenticate with bearer keys and nothing reads a cookie
    session: skip decoding and signing one on every request."""

    def open_session(self, app, request):
        return None  # Flask substitutes a null session

    def save_session(self, app, session, response) -> None:
        pass


def create_app(overrides: dict | None = None) -> Flask:
    """Build the application; binds extensions and blueprints, does no I/O."""
    app = Flask(__name__, static_folder=None)
    app.config.from_object(Config)
    if overrides:
        app.config.update(overrides)
    app.json.sort_keys = False
    app.session_interface = NoCookieSessions()

    # Innermost: cache reads see the client's address as ProxyFix leaves it.
    app.wsgi_app = CacheReads(app, app.wsgi_app)
    if app.config["TRUSTED_PROXY_COUNT"]:
        count = app.config["TRUSTED_PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)

    app.wsgi_app = FastInputMiddleware(app.wsgi_app)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(app.config.get("MIGRATIONS_DIR", "migrations")))
    init_storage(app)
    transactions.init_app(app)
    ratelimit.init_app(app)
    register_error_handlers(app)
    headers.init_app(app)

    request_counter.init_app(app)
    # The clients treat any 3xx from an API route as success: never redirect
    # for a trailing or doubled slash.
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    app.url_map.converters["keypath"] = cache_http.KeyPath
    blueprints = (cache_v8.bp, cache_nx.bp, cache_http.bp, artifacts_v1.bp, sessions_v1.bp, account_v1.bp)
    for blueprint in (*blueprints, public.bp, docs.bp):
        app.register_blueprint(blueprint)
    cli.init_app(app)
    return app
