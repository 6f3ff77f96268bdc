"""Request → typed values, with every failure an InvalidRequest (or
FileTooLarge). The only place request input is read: services take what this
module returns, and apply their value rules (services/validation.py) through it
where a field's rule decides how it parses."""

import base64
import binascii
import io
import json
import os
import re
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

from flask import current_app, request
from werkzeug.exceptions import BadRequest, ClientDisconnected, RequestEntityTooLarge
from werkzeug.http import parse_options_header

from .. import b64url, metrics
from ..errors import FileTooLarge, InvalidRequest
from ..services import validation
from ..services.artifacts.reads import ListFilters, is_artifact_id
from ..services.cache import MAX_EVENTS, EventInput, is_valid_hash
from ..services.plans import Plan
from ..services.validation import MAX_METADATA_BYTES, METADATA_KEY

DEFAULT_JSON_LIMIT = 1024 * 1024
# Room for the multipart boundaries, part headers and text fields.
FORM_OVERHEAD = 256 * 1024
PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
MAX_IDEMPOTENCY_KEY = 256
DEFAULT_TTL = "30d"
_TTL = re.compile(r"^([1-9][0-9]{0,9})([smhdw])$")
_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


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


def bearer_token() -> str | None:
    """The token of an `Authorization: Bearer <token>` header, any token
    (API keys have their own rule in auth.py), or None."""
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


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
        **{name: filter_value(args.get(name), name) for name in _TEXT_FILTERS},
        created_after=timestamp(args.get("created_after"), "created_after"),
        created_before=timestamp(args.get("created_before"), "created_before"),
        metadata=metadata_filters(args),
    )


_TEXT_FILTERS = ("session_id", "agent_id", "filename", "content_type")


# Each filter is a subquery: PostgreSQL's planning time grows much faster
# than their number (300 took 33 s and a core), so a listing takes a few.
MAX_METADATA_FILTERS = 20


def metadata_filters(args) -> dict[str, str]:
    """`metadata.<key>=<value>` query parameters, keys validated."""
    filters = {}
    for name, value in args.items(multi=True):
        if name.startswith("metadata."):
            key = name[len("metadata.") :]
            if not METADATA_KEY.match(key):
                raise InvalidRequest(f"metadata filter key {key!r} is invalid")
            if key not in filters and len(filters) == MAX_METADATA_FILTERS:
                raise InvalidRequest(f"a listing takes at most {MAX_METADATA_FILTERS} metadata filters")
            filters[key] = filter_value(value, name)
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
            raise _broken() from None

    def readinto(self, buffer) -> int:
        if not hasattr(self._stream, "readinto"):
            # gunicorn's chunked-body reader has read() only; as with an
            # io.RawIOBase that lacks readinto, the caller falls back to read().
            raise NotImplementedError
        try:
            return self._stream.readinto(buffer)
        except (OSError, ClientDisconnected):
            raise _broken() from None


def _broken() -> InvalidRequest:
    metrics.upload_aborted("disconnected")
    return InvalidRequest("the body could not be read to its end; nothing was stored")


def required_content_length() -> int:
    """The announced body length, for protocols that require one (Nx)."""
    if request.content_length is None:
        raise InvalidRequest("Content-Length is required")
    return request.content_length


def body_stream() -> BinaryIO:
    """The raw request body for streaming to storage; never buffered."""
    return _RequestBody(request.stream)


# -- query strings ---------------------------------------------------------------


def filter_value(value: str | None, name: str) -> str | None:
    """An exact-match filter: any text a stored value could hold."""
    if value is not None and not validation.storable(value):
        raise InvalidRequest(f"{name} may not contain NUL")
    return value


def limit(value: str | None, *, default: int = 50, maximum: int = 200) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidRequest(f"limit must be an integer from 1 to {maximum}") from None
    if not 1 <= number <= maximum:
        raise InvalidRequest(f"limit must be an integer from 1 to {maximum}")
    return number


def timestamp(value: str | None, name: str) -> datetime | None:
    """ISO-8601 with Z or an offset, leniently: an unencoded '+' arrives as ' '."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace(" ", "+"))
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):  # 0001-01-01T00:00:00+05:00 is before year 1 in UTC
        raise InvalidRequest(f"{name} must be an ISO-8601 timestamp") from None
    return parsed


def cursor(value: str | None, *, name: str, valid_id: Callable[[str], bool]) -> tuple[datetime, str] | None:
    """The (timestamp, id) position a list cursor names (serializers.cursor
    writes them); InvalidRequest for anything a caller crafted."""
    if not value:
        return None
    invalid = InvalidRequest(f"{name} is not a valid cursor")
    try:
        at, item_id = json.loads(b64url.decode(value))
    except (ValueError, TypeError, RecursionError):
        raise invalid from None
    # Whatever reaches the query is a timestamp and a well-formed id.
    if not isinstance(at, str) or not isinstance(item_id, str) or not valid_id(item_id):
        raise invalid
    return timestamp(at, name), item_id


def artifact_listing(args) -> dict[str, Any]:
    """list_artifacts' arguments: filters, limit and position."""
    return {
        "filters": artifact_filters(args),
        "limit": limit(args.get("limit")),
        "after": cursor(args.get("cursor"), name="cursor", valid_id=is_artifact_id),
    }


def _is_session_id(value: str) -> bool:
    try:
        return validation.label(value, "after") is not None
    except InvalidRequest:
        return False


def session_listing(args) -> dict[str, Any]:
    """list_sessions' arguments; the position is `after`, or `cursor` as the SDK names it."""
    return {
        "limit": limit(args.get("limit")),
        "created_after": timestamp(args.get("created_after"), "created_after"),
        "created_before": timestamp(args.get("created_before"), "created_before"),
        "after": cursor(args.get("after") or args.get("cursor"), name="after", valid_id=_is_session_id),
    }


# -- /v1 bodies --------------------------------------------------------------------


def idempotency_key() -> str | None:
    value = request.headers.get("Idempotency-Key")
    if value is None or value == "":
        return None
    if len(value) > MAX_IDEMPOTENCY_KEY or validation.has_control(value):
        raise InvalidRequest(f"Idempotency-Key may be at most {MAX_IDEMPOTENCY_KEY} characters")
    return value


def ttl_seconds(value: object) -> int | None:
    """`<n>s|m|h|d|w` → whole seconds; `never` → None."""
    if value == "never":
        return None
    if not isinstance(value, str) or not (match := _TTL.match(value)):
        raise InvalidRequest("ttl must look like 30d, 12h, 90m, 45s, 2w or be 'never'")
    return int(match.group(1)) * _TTL_UNITS[match.group(2)]


def required_ttl(body: dict) -> int | None:
    """extend-ttl's `ttl`: unlike an upload's, with no default to fall back on."""
    ttl = body.get("ttl")
    if ttl is None or ttl == "":
        raise InvalidRequest("ttl is required")
    return ttl_seconds(ttl)


def _metadata(value: object) -> object:
    """The metadata field: absent, an object, or (from a form) its JSON text."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        # A JSON body's string may hold lone surrogates, which have no UTF-8:
        # measured as they are, and refused below with the rest of the text.
        if len(value.encode("utf-8", "surrogatepass")) > MAX_METADATA_BYTES * 2:
            raise InvalidRequest("metadata is larger than 8 KB")
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            raise InvalidRequest("metadata must be a JSON object of strings") from None
    return value


def artifact_fields(
    raw: dict, plan: Plan, *, part_filename: str | None = None, part_content_type: str | None = None
) -> validation.ArtifactFields:
    """What the caller said about a new artifact (form fields or a JSON body),
    each under its value rule; the TTL (default 30d) under the plan's."""
    name = validation.filename(raw.get("filename") or part_filename)
    ttl = raw.get("ttl")
    return validation.ArtifactFields(
        filename=name,
        content_type=validation.content_type(raw.get("content_type"), part_content_type, name),
        session_id=validation.label(raw.get("session_id"), "session_id"),
        agent_id=validation.label(raw.get("agent_id"), "agent_id"),
        ttl=validation.lifetime(ttl_seconds(DEFAULT_TTL if ttl in (None, "") else ttl), plan),
        metadata=validation.metadata(_metadata(raw.get("metadata"))),
    )


@dataclass
class ArtifactUpload:
    fields: validation.ArtifactFields
    body: BinaryIO
    size: int
    max_size: int  # the body's limit, which storage enforces again as it streams


def artifact_upload(plan: Plan) -> ArtifactUpload:
    """A direct upload: multipart/form-data with one `file` part (at most
    MULTIPART_MAX_BYTES), or JSON with base64 `content` (JSON_UPLOAD_MAX_BYTES)."""
    if request.mimetype == "multipart/form-data":
        max_size = current_app.config["MULTIPART_MAX_BYTES"]
        part, raw = multipart_upload(max_bytes=max_size)
        fields = artifact_fields(raw, plan, part_filename=part.filename, part_content_type=part.content_type)
        return ArtifactUpload(fields, part.stream, part.size, max_size)
    if request.mimetype == "application/json":
        max_size = current_app.config["JSON_UPLOAD_MAX_BYTES"]
        fields, data = base64_upload(plan, max_bytes=max_size)
        return ArtifactUpload(fields, io.BytesIO(data), len(data), max_size)
    raise InvalidRequest("send multipart/form-data or application/json")


def base64_upload(plan: Plan, *, max_bytes: int) -> tuple[validation.ArtifactFields, bytes]:
    """A JSON upload: the artifact's fields and its decoded `content`."""
    # A base64 body is 4/3 of the decoded size, plus the other fields.
    body = json_object(max_bytes=max_bytes * 4 // 3 + JSON_UPLOAD_OVERHEAD)
    if "filename" not in body or "content" not in body:
        raise InvalidRequest("filename and content are required")
    fields = artifact_fields(body, plan)
    return fields, _base64_content(body["content"], body.get("content_encoding"), max_size=max_bytes)


JSON_UPLOAD_OVERHEAD = 64 * 1024


def _base64_content(content: object, encoding: object, *, max_size: int) -> bytes:
    if encoding not in (None, "base64"):
        raise InvalidRequest("content_encoding must be 'base64'")
    if not isinstance(content, str):
        raise InvalidRequest("content must be a base64 string")
    if len(content) > (max_size // 3 + 1) * 4 + 4:
        raise FileTooLarge(f"content may be at most {max_size} bytes decoded")
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("content is not valid base64") from None
    if len(data) > max_size:
        raise FileTooLarge(f"content may be at most {max_size} bytes decoded")
    return data


def reservation(body: dict, plan: Plan) -> tuple[validation.ArtifactFields, int]:
    """An upload-url request: the artifact's fields and its `size_bytes`."""
    if "filename" not in body:
        raise InvalidRequest("filename is required")
    fields = artifact_fields(body, plan)
    size_bytes = body.get("size_bytes")
    if not _positive_int(size_bytes):
        raise InvalidRequest("size_bytes must be a positive integer")
    return fields, size_bytes


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def artifact_ids(body: dict, *, max_ids: int) -> list[str]:
    """A batch's `artifact_ids`: 1 to `max_ids` distinct strings. Their shape
    is not checked here: a malformed id is one more artifact_not_found."""
    ids = body.get("artifact_ids")
    if (
        not isinstance(ids, list)
        or not 1 <= len(ids) <= max_ids
        or not all(isinstance(artifact_id, str) for artifact_id in ids)
    ):
        raise InvalidRequest(f"artifact_ids must be a list of 1 to {max_ids} strings")
    if len(set(ids)) != len(ids):
        raise InvalidRequest("artifact_ids must not repeat an id")
    return ids


def link_expires_in(body: dict) -> int | None:
    """A link's `expires_in`: absent (the default), or a positive whole number of seconds."""
    expires_in = body.get("expires_in")
    if expires_in is not None and not _positive_int(expires_in):
        raise InvalidRequest("expires_in must be a positive whole number of seconds")
    return expires_in


# -- /v8 bodies ----------------------------------------------------------------------


def cache_events(events: object) -> list[EventInput]:
    """turbo's event batch, every event checked: a bad one stores nothing."""
    if not isinstance(events, list) or len(events) > MAX_EVENTS:
        raise InvalidRequest(f"the body must be a JSON array of at most {MAX_EVENTS} events")
    return [_cache_event(index, event) for index, event in enumerate(events)]


def _cache_event(index: int, event: object) -> EventInput:
    def bad(reason: str) -> InvalidRequest:
        return InvalidRequest(f"event {index}: {reason}")

    if not isinstance(event, dict):
        raise bad("must be an object")
    session_id = _canonical_uuid(event.get("sessionId"))
    if session_id is None:
        raise bad("sessionId must be a UUID")
    if event.get("source") not in ("LOCAL", "REMOTE"):
        raise bad("source must be LOCAL or REMOTE")
    if event.get("event") not in ("HIT", "MISS"):
        raise bad("event must be HIT or MISS")
    artifact_hash = event.get("hash")
    if not isinstance(artifact_hash, str) or not is_valid_hash(artifact_hash):
        raise bad("hash is invalid")
    duration = event.get("duration")
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, int | float) or not 0 <= duration < 2**53
    ):
        raise bad("duration must be a non-negative number")
    return EventInput(
        session_id=session_id,
        source=event["source"],
        event=event["event"],
        hash=artifact_hash,
        duration_ms=int(duration) if duration is not None else None,
    )


def _canonical_uuid(value: object) -> str | None:
    # uuid.UUID also takes braces, a urn: prefix and any number of dashes;
    # the canonical form is what is stored (and what fits the column).
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None
