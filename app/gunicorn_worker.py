"""gunicorn's gthread worker, hardened against slow clients, answering
gunicorn's own errors in JSON and sending no `Server` banner.

gthread hands each connection to a thread that then waits on the socket for
as long as the client likes: a few dozen clients trickling headers, bodies
nobody wants or never reading a download held every thread. This worker:

- reads each request's line and headers in its event loop, without a
  thread, within CLIENT_HEADER_TIMEOUT_SECONDS of the connection (or, on a
  kept-alive one, of the request's first byte);
- gives every socket read and write a thread makes CLIENT_IDLE_TIMEOUT_SECONDS
  to progress: a stalled upload reaches the app as a broken body (nothing is
  stored), a stalled download is dropped;
- closes the connection after a response sent before the request body was
  read (a 401, 413 or 429 on an upload) instead of draining that body;
- lets one client address hold at most MAX_CONNECTIONS_PER_ADDRESS
  connections and MAX_THREADS_PER_ADDRESS threads of a worker; its further
  requests wait for one of its threads, holding none.

Requests gunicorn refuses before the app sees them (a header over
limit_request_field_size, too many headers, a malformed request line) would
otherwise get an HTML page. No path is known yet, so the body carries both
shapes: the /v8 fields at the top and the /v1 envelope under "error".
"""

import contextlib
import errno
import io
import selectors
import socket
import time
from collections import Counter, defaultdict, deque
from functools import partial

from gunicorn import util
from gunicorn.http import wsgi
from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.workers.gthread import TConn, ThreadWorker

from config import Config

from .errors import unparsed_request_error

# Real request heads are a few hundred bytes. A longer one is refused (431)
# before it gets a thread: handed on unfinished, its thread would wait on the
# rest with no header deadline, and a trickle of them could hold every thread.
MAX_BUFFERED_HEAD = 64 * 1024
# After an early response the worker stops sending, then reads and discards
# what the client still sends for this long before closing. Closing at once
# with unread bytes makes the kernel answer with a reset, and a client still
# sending its body may lose the response with it (nginx's lingering_timeout).
LINGER_SECONDS = 5


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    body = unparsed_request_error(status_int, reason, mesg)
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


# The base worker's handle_error writes through util.write_error.
util.write_error = write_json_error


def body_left_on_socket(req) -> bool:
    """Whether part of the request body has not even reached gunicorn's
    buffer yet: reading past it would wait on the client."""
    reader = req.body.reader
    if isinstance(reader, LengthReader):
        buffered = reader.unreader.buf
        buffered.seek(0, io.SEEK_END)
        return reader.length > buffered.tell()
    if isinstance(reader, ChunkedReader):
        return reader.parser is not None  # None once the last chunk was read
    return False


class HoardResponse(wsgi.Response):
    def start_response(self, status, headers, exc_info=None):
        # The app answered before reading the whole body (a 4xx on an upload,
        # mostly): say so with Connection: close rather than let gunicorn
        # wait for a body nobody wants before the next request.
        if body_left_on_socket(self.req):
            self.force_close()
        return super().start_response(status, headers, exc_info)

    def default_headers(self) -> list[str]:
        # gunicorn names itself in a Server header; Hoard names nothing.
        return [line for line in super().default_headers() if not line.startswith("Server:")]


# gunicorn builds every response through this module-level name.
wsgi.Response = HoardResponse


class HoardConn(TConn):
    def __init__(self, cfg, sock, client, server, on_close):
        super().__init__(cfg, sock, client, server)
        self.address = client[0] if isinstance(client, tuple) else None
        self.head = bytearray()  # the next request, read before it has a thread
        self.holds_thread_slot = False
        self.unread_body = False
        self.lingering = False
        self._on_close = on_close

    def close(self):
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close(self)
        super().close()


def _head_complete(head: bytearray) -> bool:
    return b"\r\n\r\n" in head


class JsonErrorWorker(ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.idle_timeout = Config.CLIENT_IDLE_TIMEOUT_SECONDS or None
        self.header_timeout = Config.CLIENT_HEADER_TIMEOUT_SECONDS
        self.max_connections_per_address = Config.MAX_CONNECTIONS_PER_ADDRESS
        self.max_threads_per_address = Config.MAX_THREADS_PER_ADDRESS
        self._connections = Counter()  # open connections per limited address
        self._threads = Counter()  # threads busy per limited address
        self._waiting = defaultdict(deque)  # complete requests waiting for a thread
        self._deadlines = {}  # connection -> monotonic time it is closed at

    def _limited(self, address) -> bool:
        # A peer trusted as a proxy is every client behind it (nginx limits
        # those itself, with limit_conn); unix sockets have no address.
        allowed = self.cfg.forwarded_allow_ips
        return address is not None and "*" not in allowed and address not in allowed

    # Connections: accepted, read until their head is complete, then queued
    # for a thread; kept alive or lingering afterwards.

    def accept(self, server, listener):
        try:
            sock, client = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        address = client[0] if isinstance(client, tuple) else None
        if self._limited(address) and not self._count_connection(address):
            self.log.info("Refused a connection from %s: over MAX_CONNECTIONS_PER_ADDRESS", address)
            util.close(sock)
            return
        conn = HoardConn(self.cfg, sock, client, server, self._forget)
        self.nr_conns += 1
        self._await_head(conn)

    def _count_connection(self, address: str) -> bool:
        with self._lock:
            if 0 < self.max_connections_per_address <= self._connections[address]:
                return False
            self._connections[address] += 1
            return True

    def _forget(self, conn: HoardConn) -> None:
        with self._lock:
            self._deadlines.pop(conn, None)
            if self._limited(conn.address):
                self._connections[conn.address] -= 1
                if not self._connections[conn.address]:
                    del self._connections[conn.address]

    def _await_head(self, conn: HoardConn) -> None:
        """Wait in the event loop for the rest of the request head."""
        with self._lock:
            if self.header_timeout:
                self._deadlines[conn] = time.monotonic() + self.header_timeout
            self._watch(conn)

    def _watch(self, conn: HoardConn) -> None:
        """Call back when the connection is readable; hold self._lock."""
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))

    def on_client_socket_readable(self, conn, client):
        if conn.lingering:
            self._discard(conn)
            return
        if self.cfg.is_ssl:
            # The bytes are TLS records until the handshake in conn.init():
            # parse in a thread, as gthread does.
            self._take_from_keepalive(conn)
            self._unregister(conn)
            self._dispatch(conn)
            return
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        if not conn.head and self._take_from_keepalive(conn) and self.header_timeout:
            with self._lock:
                self._deadlines[conn] = time.monotonic() + self.header_timeout
        conn.head += data
        if _head_complete(conn.head):
            self._unregister(conn)
            self._dispatch(conn)
        elif len(conn.head) >= MAX_BUFFERED_HEAD:
            self._refuse_head(conn)

    def _refuse_head(self, conn: HoardConn) -> None:
        with contextlib.suppress(OSError):
            write_json_error(
                conn.sock,
                431,
                "Request Header Fields Too Large",
                f"the request head passed {MAX_BUFFERED_HEAD} bytes",
            )
        self._drop(conn)

    def _take_from_keepalive(self, conn: HoardConn) -> bool:
        """Whether the connection was idle in keep-alive (and no longer is)."""
        with self._lock:
            try:
                self._keep.remove(conn)
            except ValueError:
                return False
            return True

    def _unregister(self, conn: HoardConn) -> None:
        with self._lock:
            self._deadlines.pop(conn, None)
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.poller.unregister(conn.sock)

    def _drop(self, conn: HoardConn) -> None:
        self._unregister(conn)
        self._take_from_keepalive(conn)
        self.nr_conns -= 1
        conn.close()

    def murder_keepalived(self):
        super().murder_keepalived()
        now = time.monotonic()
        with self._lock:
            expired = [conn for conn, deadline in self._deadlines.items() if deadline <= now]
        for conn in expired:
            if not conn.lingering:
                self.log.debug("Closed a connection from %s: no complete request head in time", conn.address)
            self._drop(conn)

    # Threads: at most max_threads_per_address per limited address.

    def _dispatch(self, conn: HoardConn) -> None:
        if self._limited(conn.address) and self.max_threads_per_address > 0:
            with self._lock:
                if self._threads[conn.address] >= self.max_threads_per_address:
                    self._waiting[conn.address].append(conn)
                    return
                self._threads[conn.address] += 1
                conn.holds_thread_slot = True
        self._submit(conn)

    def _submit(self, conn: HoardConn) -> None:
        try:
            conn.init()
            if conn.head:
                conn.parser.unreader.unread(bytes(conn.head))
                conn.head = bytearray()
            self.enqueue_req(conn)
        except Exception:
            # The pool is shut down (the worker is stopping), or TLS failed.
            self._release_thread(conn)
            self.nr_conns -= 1
            conn.close()

    def _release_thread(self, conn: HoardConn) -> None:
        if not conn.holds_thread_slot:
            return
        conn.holds_thread_slot = False
        with self._lock:
            waiting = self._waiting.get(conn.address)
            if waiting:
                following = waiting.popleft()
                following.holds_thread_slot = True
            else:
                following = None
                self._threads[conn.address] -= 1
                if not self._threads[conn.address]:
                    del self._threads[conn.address]
            if waiting is not None and not waiting:
                del self._waiting[conn.address]
        if following is not None:
            self._submit(following)

    def handle(self, conn):
        # TConn.init() made the socket blocking without a timeout.
        conn.sock.settimeout(self.idle_timeout)
        return super().handle(conn)

    def handle_request(self, req, conn):
        try:
            keepalive = super().handle_request(req, conn)
        except TimeoutError:
            self.log.info("Dropped %s: no progress in %s s", conn.address, self.idle_timeout)
            return False
        if body_left_on_socket(req):
            conn.unread_body = True
            return False
        if keepalive:
            # What is left of the body is already buffered: discarding it
            # waits on nothing, and keeps the next request's bytes in step.
            while req.body.read(65536):
                pass
        return keepalive

    def finish_request(self, fs):
        conn = fs.conn
        self._release_thread(conn)
        try:
            keepalive = not fs.cancelled() and fs.result()[0]
        except Exception:
            keepalive = False
        if keepalive and self.alive:
            self._keep_alive(conn)
        elif conn.unread_body and self.alive and not fs.cancelled():
            self._linger(conn)
        else:
            self.nr_conns -= 1
            conn.close()

    def _keep_alive(self, conn: HoardConn) -> None:
        # Bytes of the next request that came with the last one: its head
        # may be complete already, and then waiting on the socket would stall.
        unreader = conn.parser.unreader
        conn.head = bytearray(unreader.buf.getvalue())
        unreader.buf = io.BytesIO()
        if _head_complete(conn.head):
            self._dispatch(conn)
            return
        if len(conn.head) >= MAX_BUFFERED_HEAD:
            self._refuse_head(conn)
            return
        conn.sock.setblocking(False)
        if conn.head:
            self._await_head(conn)
            return
        conn.set_timeout()
        with self._lock:
            self._keep.append(conn)
            self._watch(conn)

    def _linger(self, conn: HoardConn) -> None:
        """Stop sending (the client sees the response end), then discard
        what it still sends until it closes or LINGER_SECONDS pass."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
        except OSError:
            self.nr_conns -= 1
            conn.close()
            return
        conn.lingering = True
        with self._lock:
            self._deadlines[conn] = time.monotonic() + LINGER_SECONDS
            self._watch(conn)

    def _discard(self, conn: HoardConn) -> None:
        try:
            if conn.sock.recv(65536):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._drop(conn)
