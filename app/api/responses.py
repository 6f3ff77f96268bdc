"""Sending stored bytes: sendfile, X-Accel-Redirect, a redirect, or a stream."""

import re
from typing import BinaryIO

from flask import Response, request
from werkzeug.wsgi import wrap_file

from .. import metrics
from ..services.downloads import Download
from ..storage.base import content_disposition

# When the bytes are copied rather than sent with sendfile (S3 streams), move
# them in large chunks: the per-chunk overhead dominates at the 8 KiB default.
STREAM_CHUNK_SIZE = 1024 * 1024


def _send_stream(
    environ: dict,
    *,
    stream: BinaryIO,
    size: int,
    content_type: str,
    headers: dict[str, str] | None = None,
    download_name: str | None = None,
    ranges: bool = False,
) -> Response:
    """Answer with the object's bytes; the stream is closed when sent."""
    # wrap_file hands the file to the server's wsgi.file_wrapper: gunicorn
    # then sends it with sendfile(2), without copying through Python.
    response = Response(
        wrap_file(environ, stream, buffer_size=STREAM_CHUNK_SIZE),
        content_type=content_type,
        direct_passthrough=True,
    )
    return _decorate(environ, response, size, headers, download_name, ranges)


def _decorate(environ, response, size, headers, download_name, ranges, set_length=True) -> Response:
    if set_length:
        response.content_length = size
    for name, value in (headers or {}).items():
        response.headers[name] = value
    if download_name is not None:
        response.headers["Content-Disposition"] = content_disposition(download_name)
    if ranges:
        response = response.make_conditional(
            _rfc_range(environ, size), accept_ranges=True, complete_length=size
        )
    if environ["REQUEST_METHOD"] != "HEAD" and response.status_code in (200, 206):
        # What the body will hold: the object, or the range asked for.
        metrics.bytes_served(size if response.content_length is None else response.content_length)
    return response


_SUFFIX_RANGE = re.compile(r"\s*bytes\s*=\s*-\s*([0-9]+)\s*")


def _rfc_range(environ: dict, size: int) -> dict:
    """The request as RFC 9110 reads its Range where Werkzeug answers 416: a
    range unit other than bytes is ignored (a full 200), and a suffix longer
    than the object selects all of it."""
    header = environ.get("HTTP_RANGE")
    if header is None:
        return environ
    if header.partition("=")[0].strip().lower() != "bytes":
        return {name: value for name, value in environ.items() if name != "HTTP_RANGE"}
    suffix = _SUFFIX_RANGE.fullmatch(header)
    if suffix is not None and size > 0:
        # Compared as text first, and handed on in its shortest spelling:
        # int() (Werkzeug's too) refuses more than 4,300 digits.
        digits = suffix.group(1).lstrip("0")
        if len(digits) > len(str(size)) or int(digits or "0") > size:
            return {**environ, "HTTP_RANGE": "bytes=0-"}
        return {**environ, "HTTP_RANGE": f"bytes=-{digits or '0'}"}
    return environ


def send_download(
    download: Download,
    *,
    content_type: str,
    headers: dict[str, str] | None = None,
    download_name: str | None = None,
    ranges: bool = False,
    environ: dict | None = None,
) -> Response:
    """Answer with a Download: a redirect, headers alone (HEAD), or the bytes.

    `environ` is the WSGI request's, for callers outside Flask's request context."""
    if environ is None:
        environ = request.environ
    if download.redirect_url is not None:
        # No body: Flask's redirect() would add an HTML page to an API answer.
        return Response(status=302, headers={"Location": download.redirect_url})
    if download.accel_uri is not None:
        response = Response(status=200, content_type=content_type)
        response.headers["X-Accel-Redirect"] = download.accel_uri
        return _decorate(environ, response, download.size, headers, download_name, ranges, set_length=False)
    if download.stream is None:
        response = Response(status=200, content_type=content_type)
        return _decorate(environ, response, download.size, headers, download_name, ranges)
    return _send_stream(
        environ,
        stream=download.stream,
        size=download.size,
        content_type=content_type,
        headers=headers,
        download_name=download_name,
        ranges=ranges,
    )
