"""Request → typed values, with every failure an InvalidRequest."""

import os
import re
import socket
from dataclasses import dataclass
from typing import Any, BinaryIO

from flask import current_app, request
from werkzeug.exceptions import BadRequest, ClientDisconnected, RequestEntityTooLarge
from werkzeug.http import parse_options_header

from ..errors import FileTooLarge, InvalidRequest
from ..services import validation
from ..services.artifacts import ListFilters
from ..services.validation import METADATA_KEY

DEFAULT_JSON_LIMIT = 1024 * 1024
# Room for the multipart boundaries, part headers and text fields.
FORM_OVERHEAD = 256 * 1024
PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")


def json_body(*, default: Any = None, max_bytes: int = DEFAULT_JSON_LIMIT) -> Any:
    """The parsed JSON body; `default` when the body is empty."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise FileTooLarge(f"the JSON body may be at most {max_bytes} bytes")
    if request.content_length == 0 or (
        request.content_length is None and "chunked" not in request.headers.get("Transfer-Encoding", "")
    ):
        return default
    # A chunked body announces no length, and Werkzeug stops reading one at
    # max_content_length without a word: allow one byte more, so that a body
    # over the cap shows as one rather than as JSON cut short.
    request.max_content_length = max_bytes + 1
    try:
        if len(request.get_data(cache=True)) > max_bytes:
            raise FileTooLarge(f"the JSON body may be at most {max_bytes} bytes")
        return request.get_json(force=True, silent=False)
    except RequestEntityTooLarge:
        raise FileTooLarge(f"the JSON body may be at most {max_bytes} bytes") from None
    except (BadRequest, RecursionError, UnicodeDecodeError):
        raise InvalidRequest("the body is not valid JSON") from None


def json_object(*, default: Any = None, max_bytes: int = DEFAULT_JSON_LIMIT) -> dict:
    body = json_body(default=default, max_bytes=max_bytes)
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    return body


def cache_query_hashes(*, max_hashes: int) -> list[str]:
    """The `hashes` of a cache query: a list of 1 to `max_hashes` strings."""
    hashes = json_object().get("hashes")
    if (
        not isinstance(hashes, list)
        or not 1 <= len(hashes) <= max_hashes
        or not all(isinstance(h, str) for h in hashes)
    ):
        raise InvalidRequest(f"'hashes' must be a list of 1 to {max_hashes} strings")
    return hashes


def header_int(name: str, *, default: int = 0) -> int:
    value = request.headers.get(name)
    if value in (None, ""):
        return default
    # ASCII digits only: int() would also take "1_000", "+5" and other scripts' digits.
    if not (value.isascii() and value.isdigit()):
        raise InvalidRequest(f"header {name} must be an integer")
    if len(value.lstrip("0")) > 19 or int(value) >= 2**63:
        raise InvalidRequest(f"header {name} is out of range")
    return int(value)


def header_str(name: str, *, max_length: int) -> str | None:
    value = request.headers.get(name)
    if value is None:
        return None
    if len(value) > max_length:
        raise InvalidRequest(f"header {name} may be at most {max_length} characters")
    return value


def stored_header(name: str, *, max_length: int) -> str | None:
    """A header value kept with an entry and sent back verbatim on later
    responses: printable ASCII only. gunicorn refuses a response header with
    a control character, so one stored here would break every later read."""
    value = header_str(name, max_length=max_length)
    if value is not None and not PRINTABLE_ASCII.fullmatch(value):
        raise InvalidRequest(f"header {name} may contain only printable ASCII characters")
    return value


def header_flag(name: str) -> bool | None:
    value = request.headers.get(name)
    if value in (None, ""):
        return None
    if value not in ("0", "1", "true", "false"):
        raise InvalidRequest(f"header {name} must be 0 or 1")
    return value in ("1", "true")


@dataclass
class FilePart:
    stream: BinaryIO
    size: int
    filename: str | None
    content_type: str | None


UPLOAD_FIELDS = ("filename", "content_type", "session_id", "agent_id", "ttl", "metadata")


def multipart_upload(*, max_bytes: int) -> tuple[FilePart, dict[str, str]]:
    """The single `file` part (spooled to disk by Werkzeug, never held in
    memory) and the text fields of a multipart upload."""
    if request.content_length is not None and request.content_length > max_bytes + FORM_OVERHEAD:
        raise FileTooLarge(f"multipart uploads may be at most {max_bytes} bytes")
    request.max_content_length = max_bytes + FORM_OVERHEAD
    try:
        files = request.files.getlist("file")
        form = request.form
    except RequestEntityTooLarge:
        if request.content_length is not None:
            # The announced length fits (checked above): Werkzeug refused a
            # text field over MAX_FORM_MEMORY_SIZE or too many parts.
            raise InvalidRequest("a text field is too large, or there are too many parts") from None
        raise FileTooLarge(f"multipart uploads may be at most {max_bytes} bytes") from None
    except (BadRequest, ValueError):
        raise InvalidRequest("the multipart body is malformed") from None
    if len(files) != 1:
        raise InvalidRequest("exactly one 'file' part is required")
    part = files[0]
    size = part.stream.seek(0, os.SEEK_END)
    part.stream.seek(0)
    if size > max_bytes:
        raise FileTooLarge(f"multipart uploads may be at most {max_bytes} bytes")
    fields = {name: form[name] for name in UPLOAD_FIELDS if name in form}
    return FilePart(part.stream, size, _part_filename(part), part.mimetype or None), fields


def _part_filename(part) -> str | None:
    """The part's filename as the client sent it.

    Werkzeug turns a literal `%22` into `"` (the HTML form encoding of a
    quote); httpx, like python-multipart on Artifacta, leaves `%` alone, so
    `a%22b.txt` must stay `a%22b.txt`. Escaping `%` around the parse keeps it.
    """
    disposition = part.headers.get("Content-Disposition", "")
    if "%22" not in disposition or "filename*" in disposition.lower():
        return part.filename or None
    _, options = parse_options_header(disposition.replace("%", "%25"))
    return options.get("filename", "").replace("%25", "%") or None


def base_url() -> str:
    """Where links and signed URLs point: PUBLIC_BASE_URL, else this request's
    host if it names this server. Any other Host is refused: a link or signed
    URL must never point wherever a request's Host says."""
    configured = current_app.config["PUBLIC_BASE_URL"]
    if configured:
        return configured
    if not _host_allowed():
        host = request.host[:100]
        raise InvalidRequest(
            f"the Host {host!r} is not a name this server answers to: set PUBLIC_BASE_URL, "
            "or add the name to ALLOWED_HOSTS"
        )
    return request.host_url.rstrip("/")


def base_url_if_allowed() -> str:
    """base_url(), or "" (so that a URL is a bare path) where the Host is not
    allowed: for URLs a client only reads, which must not fail the request."""
    configured = current_app.config["PUBLIC_BASE_URL"]
    if configured:
        return configured
    return request.host_url.rstrip("/") if _host_allowed() else ""


# Loopback under every name it goes by, and this machine's own name.
_OWN_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]", socket.gethostname().lower()})
# What a server bound to every interface reports as its name: no name at all.
_WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::", "[::]"})


def _host_allowed() -> bool:
    name = _host_name(request.host)
    if not name:
        return False  # missing, or characters no host name has
    if name in _OWN_NAMES:
        return True
    # The address the server itself reports, not the one ProxyFix copied
    # from X-Forwarded-Host over it.
    environ = request.environ.get("werkzeug.proxy_fix.orig") or request.environ
    server_name = _host_name(environ.get("SERVER_NAME") or "")
    if name == server_name and server_name not in _WILDCARD_ADDRESSES:
        return True
    for entry in current_app.config["ALLOWED_HOSTS"]:
        allowed = _host_name(entry)
        if allowed == "*" or name == allowed.lstrip(".") or (allowed[:1] == "." and name.endswith(allowed)):
            return True
    return False


def _host_name(host: str) -> str:
    """`host[:port]` → the lowercase name, IPv6 addresses in brackets."""
    if ":" in host and not host.startswith("["):
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else f"[{host}]"
    elif host.startswith("["):
        host = host[: host.find("]") + 1]
    return host.lower().rstrip(".")


def artifact_filters(args) -> ListFilters:
    """The listing's exact-match and date filters from the query string."""
    return ListFilters(
        **{name: validation.filter_value(args.get(name), name) for name in _TEXT_FILTERS},
        created_after=validation.timestamp(args.get("created_after"), "created_after"),
        created_before=validation.timestamp(args.get("created_before"), "created_before"),
        metadata=metadata_filters(args),
    )


_TEXT_FILTERS = ("session_id", "agent_id", "filename", "content_type")


def metadata_filters(args) -> dict[str, str]:
    """`metadata.<key>=<value>` query parameters, keys validated."""
    filters = {}
    for name, value in args.items(multi=True):
        if name.startswith("metadata."):
            key = name[len("metadata.") :]
            if not METADATA_KEY.match(key):
                raise InvalidRequest(f"metadata filter key {key!r} is invalid")
            filters[key] = validation.filter_value(value, name)
    return filters


class _RequestBody:
    """The request stream, read by storage. A read that fails (the connection
    dropped mid-body, a malformed chunk) is the client's fault: a 400, with
    nothing stored, rather than an unexpected 500."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except (OSError, ClientDisconnected):
            raise InvalidRequest("the body could not be read to its end; nothing was stored") from None

    def readinto(self, buffer) -> int:
        if not hasattr(self._stream, "readinto"):
            # gunicorn's chunked-body reader has read() only; as with an
            # io.RawIOBase that lacks readinto, the caller falls back to read().
            raise NotImplementedError
        try:
            return self._stream.readinto(buffer)
        except (OSError, ClientDisconnected):
            raise InvalidRequest("the body could not be read to its end; nothing was stored") from None


def body_stream() -> BinaryIO:
    """The raw request body for streaming to storage; never buffered."""
    return _RequestBody(request.stream)
