"""How stored bytes leave: an open stream (sent with sendfile), a file nginx
sends (X-Accel-Redirect), or a presigned redirect.

Shared by the build cache and the artifact routes; which one is used is the
operator's choice (DOWNLOAD_MODE), decided here within what the backend can do.
"""

from dataclasses import dataclass
from typing import BinaryIO

from flask import current_app

from ..storage import get_storage


@dataclass
class Download:
    storage_key: str
    size: int
    stream: BinaryIO | None = None  # None for HEAD, redirects and X-Accel-Redirect
    redirect_url: str | None = None
    accel_uri: str | None = None  # where nginx's internal location serves the file


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
    mode = current_app.config["DOWNLOAD_MODE"]
    if may_redirect and mode == "redirect":
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
    stream = store.open_read(storage_key)  # ObjectNotFound before any answer is chosen
    if mode == "x-accel" and store.local_path(storage_key) is not None:
        stream.close()
        accel_uri = current_app.config["X_ACCEL_PREFIX"] + storage_key
        return Download(storage_key=storage_key, size=size, accel_uri=accel_uri)
    return Download(storage_key=storage_key, size=size, stream=stream)
