"""The headers every response carries, decided in one place.

security_headers() is pure and cheap: the after_request hook below calls it
for every Flask response, and so may anything that answers before Flask does.
"""

from flask import Flask, Response, request

from .auth import presented_valid_key

# Browsers must take the declared Content-Type at its word: an uploaded file
# declared text/plain must never be sniffed into HTML and run.
_NOSNIFF = ("X-Content-Type-Options", "nosniff")
# Uploaded bytes are served from Hoard's own origin. Should a browser render
# one anyway, it runs with no scripts, no forms and an opaque origin.
_SANDBOX = ("Content-Security-Policy", "sandbox")
# An answer to a keyed request belongs to one tenant: no cache may keep it,
# shared or not.
_PRIVATE = ("Cache-Control", "private, no-store")

# The console's HTML pages: scripts, styles and images from Hoard alone (no
# inline script, no other origin), never framed, no referrer leaving it, and
# never cached: each page carries the person's CSRF token.
_CONSOLE = (
    _NOSNIFF,
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "private, no-store"),
)

_HEADERS = {
    (authenticated, uploaded_content): (
        (_NOSNIFF,) + ((_SANDBOX,) if uploaded_content else ()) + ((_PRIVATE,) if authenticated else ())
    )
    for authenticated in (False, True)
    for uploaded_content in (False, True)
}

# The routes whose body is bytes a user uploaded. The /v1 ones also go out
# as attachments, a header built with the download (storage/base.py
# content_disposition, for Hoard's answers and presigned GETs alike).
UPLOADED_CONTENT_ENDPOINTS = frozenset(
    {"cache.download", "public.signed_download", "public.link_download", "console.download_artifact"}
)
CONSOLE_PREFIX = "/console/"


def security_headers(*, authenticated: bool, uploaded_content: bool) -> list[tuple[str, str]]:
    """The headers a response must carry, each to be set (replacing any value
    already there).

    authenticated: the request presented a valid key. uploaded_content: the
    body is (or, for a HEAD or an error, would be) bytes a user uploaded.
    """
    return list(_HEADERS[authenticated, uploaded_content])


def _apply(response: Response) -> Response:
    headers = response.headers
    uploaded_content = request.endpoint in UPLOADED_CONTENT_ENDPOINTS
    if not uploaded_content and (request.path == "/" or request.path.startswith(CONSOLE_PREFIX)):
        chosen = _CONSOLE
    else:
        chosen = _HEADERS[presented_valid_key(), uploaded_content]
    for name, value in chosen:
        headers[name] = value
    return response


def init_app(app: Flask) -> None:
    # Error responses (ApiError, 404/405, 429, 500) pass through after_request
    # hooks too: every answer Flask gives carries these.
    app.after_request(_apply)
