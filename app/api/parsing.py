"""Request → typed values, with every failure an InvalidRequest."""

from typing import Any

from flask import request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from ..errors import FileTooLarge, InvalidRequest

DEFAULT_JSON_LIMIT = 1024 * 1024


def json_body(*, default: Any = None, max_bytes: int = DEFAULT_JSON_LIMIT) -> Any:
    """The parsed JSON body; `default` when the body is empty."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise FileTooLarge(f"the JSON body may be at most {max_bytes} bytes")
    request.max_content_length = max_bytes
    if request.content_length == 0 or (
        request.content_length is None and "chunked" not in request.headers.get("Transfer-Encoding", "")
    ):
        return default
    try:
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


def header_int(name: str, *, default: int = 0) -> int:
    value = request.headers.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidRequest(f"header {name} must be an integer") from None
    if not 0 <= number < 2**63:
        raise InvalidRequest(f"header {name} is out of range")
    return number


def header_str(name: str, *, max_length: int) -> str | None:
    value = request.headers.get(name)
    if value is None:
        return None
    if len(value) > max_length:
        raise InvalidRequest(f"header {name} may be at most {max_length} characters")
    return value


def header_flag(name: str) -> bool | None:
    value = request.headers.get(name)
    if value in (None, ""):
        return None
    if value not in ("0", "1", "true", "false"):
        raise InvalidRequest(f"header {name} must be 0 or 1")
    return value in ("1", "true")
