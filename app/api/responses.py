"""Sending stored bytes: sendfile, X-Accel-Redirect, a redirect, or a stream."""

from typing import BinaryIO
from urllib.parse import quote

from flask import Response, current_app, redirect, request
from werkzeug.wsgi import wrap_file

from ..storage import get_storage


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback and the exact name in RFC 5987 form."""
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\;%' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def send_object(
    *,
    storage_key: str,
    stream: BinaryIO,
    size: int,
    content_type: str,
    headers: dict[str, str] | None = None,
    download_name: str | None = None,
    ranges: bool = False,
) -> Response:
    """Answer with the object's bytes; the stream is closed when sent."""
    if current_app.config["DOWNLOAD_MODE"] == "x-accel":
        path = get_storage().local_path(storage_key)
        if path is not None:
            stream.close()
            response = Response(status=200, content_type=content_type)
            response.headers["X-Accel-Redirect"] = current_app.config["X_ACCEL_PREFIX"] + storage_key
            return _decorate(response, size, headers, download_name, ranges, set_length=False)
    # wrap_file hands the file to the server's wsgi.file_wrapper: gunicorn
    # then sends it with sendfile(2), without copying through Python.
    response = Response(
        wrap_file(request.environ, stream), content_type=content_type, direct_passthrough=True
    )
    response = _decorate(response, size, headers, download_name, ranges)
    return response


def _decorate(response, size, headers, download_name, ranges, set_length=True) -> Response:
    if set_length:
        response.content_length = size
    for name, value in (headers or {}).items():
        response.headers[name] = value
    if download_name is not None:
        response.headers["Content-Disposition"] = content_disposition(download_name)
    if ranges:
        response = response.make_conditional(request.environ, accept_ranges=True, complete_length=size)
    return response


def redirect_to(url: str) -> Response:
    return redirect(url, code=302)
