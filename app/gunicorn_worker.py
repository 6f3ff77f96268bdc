"""gunicorn's gthread worker, answering gunicorn's own errors in JSON.

Requests gunicorn refuses before the app sees them (a header over
limit_request_field_size, too many headers, a malformed request line) would
otherwise get an HTML page. No path is known yet, so the body carries both
shapes: the /v8 fields at the top and the /v1 envelope under "error".
"""

import json

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

_CODES = {403: "forbidden", 500: "internal_error"}


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    code = _CODES.get(status_int, "invalid_request")
    # gunicorn leaves mesg empty for 500s; never describe internals.
    message = f"{reason}: {mesg}" if mesg and status_int < 500 else reason
    body = json.dumps(
        {"code": code, "message": message, "error": {"code": code, "message": message, "status": status_int}}
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


# The base worker's handle_error writes through util.write_error.
util.write_error = write_json_error


class JsonErrorWorker(ThreadWorker):
    pass
