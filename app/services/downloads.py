"""How stored bytes leave: an open stream, or a presigned redirect.

Shared by the build cache and the artifact routes; which one is used is the
operator's choice (DOWNLOAD_MODE) within what the backend can do.
"""

from dataclasses import dataclass
from typing import BinaryIO

from flask import current_app

from ..storage import get_storage


@dataclass
class Download:
    storage_key: str
    size: int
    stream: BinaryIO | None = None  # None for HEAD and for redirects
    redirect_url: str | None = None


def open_download(
    storage_key: str,
    size: int,
    *,
    with_body: bool = True,
    may_redirect: bool = True,
    filename: str | None = None,
    content_type: str | None = None,
) -> Download:
    """The object ready to send; ObjectNotFound when its bytes are gone.

    HEAD (with_body=False) is always answered by Hoard itself, and so is a
    download whose response headers must reach the client (may_redirect=False).
    """
    if not with_body:
        return Download(storage_key=storage_key, size=size)
    store = get_storage()
    if may_redirect and current_app.config["DOWNLOAD_MODE"] == "redirect":
        # Redirects are followed at once; a short life limits what a leaked
        # URL gives, and how long it outlives a DELETE.
        url = store.presign_get(
            storage_key,
            expires_in=current_app.config["PRESIGNED_REDIRECT_SECONDS"],
            filename=filename,
            content_type=content_type,
        )
        if url is not None:
            return Download(storage_key=storage_key, size=size, redirect_url=url)
    return Download(storage_key=storage_key, size=size, stream=store.open_read(storage_key))
