"""The console's session: one encrypted, expiring cookie (app/signing.py)
holding the signed-in key's id and the CSRF token of the person's forms.

The cookie exists before sign-in too, holding the token alone, so that the
sign-in form is protected like every other. Each request re-reads the key:
a revoked key's session ends at its next request.
"""

import hmac
import secrets

from flask import Flask, Response, current_app, g, request

from .. import signing
from ..auth import Principal
from ..errors import FileTooLarge, Forbidden
from ..services import signin
from ..services.signin import ConsoleUser

COOKIE = "hoard_console"
PURPOSE = "console session"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SIGN_IN_ENDPOINT = "console.sign_in_post"


def is_console_request() -> bool:
    return request.blueprint == "console"


def current_user() -> ConsoleUser | None:
    return g.get("console_user")


def csrf_token() -> str:
    """The token every console form carries (templates call this)."""
    return g.console_session["c"]


def _read_cookie() -> dict:
    try:
        payload = signing.verify(PURPOSE, request.cookies.get(COOKIE, ""))
    except signing.InvalidToken:
        return {}
    return payload if isinstance(payload.get("c"), str) else {}


def _load_session() -> None:
    """For console requests: the session, its user, and the caller as the
    rate limiter and request counter see it (registered before them)."""
    if not is_console_request():
        return
    payload = _read_cookie()
    user = None
    if isinstance(payload.get("k"), int):
        signed_in_at = payload.get("t") if isinstance(payload.get("t"), int | float) else 0.0
        user = signin.session_user(payload["k"], signed_in_at=signed_in_at)
    if payload and user is None and "k" in payload:
        payload = {}  # the key was revoked, or signed out: the session ends here
    if not payload:
        _start({})
    else:
        g.console_session = payload
    g.console_user = user
    # A sign-in attempt is charged to its address whoever is signed in: a
    # session must not lend its tenant's budget to guessing keys.
    g.hoard_principal = (
        None
        if user is None or request.endpoint == SIGN_IN_ENDPOINT
        else Principal(
            tenant=user.tenant,
            tenant_id=user.tenant.id,
            key_last_4=user.key_last_4,
            key_digest=user.key_digest,
        )
    )


MAX_FORM_PARTS = 100


def check_csrf() -> None:
    """Refuse a state-changing console request without the session's token,
    reading no more of its body than a console form can hold."""
    if request.method in SAFE_METHODS:
        return
    # Werkzeug refuses a body announced longer than max_content_length before
    # reading it, but cuts a chunked one short without a word: one byte over
    # the cap tells such a body from a form that fits.
    cap = current_app.config["CONSOLE_MAX_FORM_BYTES"]
    request.max_content_length = cap + 1
    request.max_form_parts = MAX_FORM_PARTS
    if len(request.get_data(cache=True, parse_form_data=False)) > cap:
        raise FileTooLarge(f"A console form is at most {cap:,} bytes.")
    sent = request.form.get(CSRF_FIELD, "")
    if not hmac.compare_digest(sent.encode(), csrf_token().encode()):
        raise Forbidden("This form has expired or did not come from the console: reload the page, try again.")


def _start(payload: dict) -> None:
    """A new session (and a new CSRF token) to be written with the response."""
    g.console_session = {**payload, "c": secrets.token_urlsafe(24)}
    g.console_cookie_changed = True


def sign_in(key_id: int) -> None:
    _start({"k": key_id, "t": signin.signed_in_now()})


def sign_out() -> None:
    """End the session here, and every other one its key began (a copied cookie)."""
    user = current_user()
    if user is not None:
        signin.sign_out(user.key_id)
    _start({})


def save_cookie(response: Response) -> Response:
    if g.get("console_cookie_changed"):
        lifetime = current_app.config["CONSOLE_SESSION_SECONDS"]
        payload = {name: value for name, value in g.console_session.items() if name != "exp"}
        response.set_cookie(
            COOKIE,
            signing.sign(PURPOSE, payload, expires_in=lifetime),
            max_age=lifetime,
            path="/",
            secure=request.is_secure,
            httponly=True,
            samesite="Lax",
        )
    return response


def init_app(app: Flask) -> None:
    # Before ratelimit's hook, which charges the caller this sets.
    app.before_request(_load_session)
