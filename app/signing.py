"""HMAC-signed, expiring tokens for the URLs Hoard serves without auth
(local presigned uploads and signed downloads)."""

import base64
import hashlib
import hmac
import json

from flask import current_app

from . import clock


class InvalidToken(Exception):
    pass


class ExpiredToken(InvalidToken):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(purpose: str, body: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return _b64(hmac.new(key, f"{purpose}.{body}".encode(), hashlib.sha256).digest())


def sign(purpose: str, payload: dict, *, expires_in: int) -> str:
    """A URL-safe token binding `payload` to `purpose` until now + expires_in."""
    expires = int(clock.unix()) + expires_in
    body = _b64(json.dumps({**payload, "exp": expires}, separators=(",", ":")).encode())
    return f"{body}.{_mac(purpose, body)}"


def verify(purpose: str, token: str) -> dict:
    """The payload of a valid token; InvalidToken or ExpiredToken otherwise."""
    body, _, mac = token.partition(".")
    if not body or not mac or not hmac.compare_digest(mac, _mac(purpose, body)):
        raise InvalidToken()
    try:
        payload = json.loads(_unb64(body))
    except ValueError:
        raise InvalidToken() from None
    if not isinstance(payload, dict) or not isinstance(payload.get("exp"), int):
        raise InvalidToken()
    if payload["exp"] <= clock.unix():
        raise ExpiredToken()
    return payload
