"""Faster request bodies under gunicorn.

gunicorn's Body.read() assembles every read from 1 KiB pieces copied through
BytesIO, which caps one upload near 150 MB/s on a small machine. For a plain
Content-Length body this middleware hands the app a reader that takes
whatever gunicorn already buffered, then reads the socket directly into
large buffers. gunicorn's own bookkeeping (bytes left, bytes buffered) stays
exact after every read, so it can still drain the rest of a body the app did
not read and keep the connection alive. Chunked bodies, and other servers,
keep the standard input.
"""

import io

try:  # gunicorn is the production server, but the app runs without it too.
    from gunicorn.http.body import Body, LengthReader
    from gunicorn.http.unreader import SocketUnreader
except ImportError:  # pragma: no cover
    Body = LengthReader = SocketUnreader = None


class SocketBody(io.RawIOBase):
    def __init__(self, reader: "LengthReader", unreader: "SocketUnreader"):
        self._reader = reader
        self._unreader = unreader

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        remaining = self._reader.length
        if remaining <= 0:
            return 0
        view = memoryview(buffer)[:remaining]
        pending = self._unreader.buf
        pending.seek(0, io.SEEK_END)
        if pending.tell():
            data = self._unreader.read()  # everything gunicorn read past the headers
            count = min(len(data), len(view))
            view[:count] = data[:count]
            if count < len(data):
                self._unreader.unread(data[count:])  # the next pipelined request
        else:
            count = self._unreader.sock.recv_into(view)
        self._reader.length -= count
        return count


class FastInputMiddleware:
    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        body = environ.get("wsgi.input")
        if (
            Body is not None
            and type(body) is Body
            and type(body.reader) is LengthReader
            and type(body.reader.unreader) is SocketUnreader
            and body.buf.tell() == 0
        ):
            environ["wsgi.input"] = SocketBody(body.reader, body.reader.unreader)
        return self.wsgi_app(environ, start_response)
