"""Unpadded base64url: URL tokens and list cursors travel in paths and query
strings as they are (the SDK sends the sessions cursor unencoded)."""

import base64


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode(text: str) -> bytes:
    """ValueError (binascii.Error) for text that is not base64url, as
    `encode` writes it: the decoder alone would also take '+' and '/', and
    spare bits in the last character, so one token would have many spellings."""
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if encode(data) != text:
        raise ValueError("not canonical base64url")
    return data
