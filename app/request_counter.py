"""Counts each authenticated request toward the tenant's monthly figure
(services/usage.py keeps the counts, per app, and flushes them)."""

from flask import Flask, Response, request

from .auth import current_principal
from .services import usage


def _count_request(response: Response) -> Response:
    principal = current_principal()
    if principal is not None:
        # The console's pages are people looking, not API usage: they note
        # the key's use but add nothing to the month's request count.
        if request.blueprint != "console":
            usage.count_request(principal.tenant_id)
        usage.key_used(principal.key_digest)
    usage.flush_if_due()
    return response


def init_app(app: Flask) -> None:
    usage.init_app(app)
    app.after_request(_count_request)
