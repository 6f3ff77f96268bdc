"""Expiring tokens for the URLs Hoard serves without auth (local presigned
uploads and signed downloads).

A token is its payload encrypted and authenticated with AES-GCM under a key
derived from SECRET_KEY, with the purpose bound as associated data: it
reveals nothing (no tenant or artifact id, no expiry) to whoever holds or
logs the URL, and it cannot be altered or used for another purpose.
"""

import base64
import hashlib
import hmac
import json
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app

from . import clock

NONCE_BYTES = 12


class InvalidToken(Exception):
    pass


class ExpiredToken(InvalidToken):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@lru_cache(maxsize=8)
def _cipher(secret: str) -> AESGCM:
    # A key of its own for URL tokens, whatever else SECRET_KEY keys.
    return AESGCM(hmac.new(secret.encode(), b"hoard url tokens", hashlib.sha256).digest())


def sign(purpose: str, payload: dict, *, expires_in: int) -> str:
    """A URL-safe token carrying `payload` for `purpose` until now + expires_in."""
    expires = int(clock.unix()) + expires_in
    plain = json.dumps({**payload, "exp": expires}, separators=(",", ":")).encode()
    nonce = os.urandom(NONCE_BYTES)
    sealed = _cipher(current_app.config["SECRET_KEY"]).encrypt(nonce, plain, purpose.encode())
    return _b64(nonce + sealed)


def verify(purpose: str, token: str) -> dict:
    """The payload of a valid token; InvalidToken or ExpiredToken otherwise."""
    try:
        raw = _unb64(token)
        plain = _cipher(current_app.config["SECRET_KEY"]).decrypt(
            raw[:NONCE_BYTES], raw[NONCE_BYTES:], purpose.encode()
        )
        payload = json.loads(plain)
    except (ValueError, InvalidTag):
        raise InvalidToken() from None
    if not isinstance(payload, dict) or not isinstance(payload.get("exp"), int):
        raise InvalidToken()
    if payload["exp"] <= clock.unix():
        raise ExpiredToken()
    return payload
