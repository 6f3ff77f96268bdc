"""The one reader that hashes, counts and enforces limits while bytes flow."""

import hashlib
from typing import BinaryIO

from .base import CHUNK_SIZE, BodyTooLarge, IncompleteBody

__all__ = ["CHUNK_SIZE", "HashingReader"]


class HashingReader:
    """Wraps a stream; raises BodyTooLarge past max_size and IncompleteBody
    when the stream ends at another length than expected_size. With
    sha256=False it only counts: hashing is most of a PUT's CPU, and the
    build cache never reads the digest."""

    def __init__(
        self, stream: BinaryIO, *, max_size: int, expected_size: int | None = None, sha256: bool = True
    ):
        self._stream = stream
        self._max_size = max_size
        self._expected_size = expected_size
        self._sha256 = hashlib.sha256() if sha256 else None
        # WSGI promises read() only; most streams (werkzeug's, the socket
        # reader under gunicorn) also fill a caller's buffer without a copy.
        self._stream_readinto = getattr(stream, "readinto", None)
        self.size = 0

    def readinto(self, buffer) -> int:
        """Fill up to len(buffer) bytes; 0 at the end of the body. Streams that
        can read into the caller's buffer do, with no copy or allocation."""
        view = memoryview(buffer).cast("B")
        if self._expected_size is not None:
            # Never read past the announced length: a keep-alive connection's
            # next request must stay in the socket.
            view = view[: self._expected_size - self.size]
        count = self._fill(view) if len(view) else 0
        if not count:
            if self._expected_size is not None and self.size != self._expected_size:
                raise IncompleteBody(self._expected_size, self.size)
            return 0
        self.size += count
        if self.size > self._max_size:
            raise BodyTooLarge(self._max_size)
        if self._sha256 is not None:
            self._sha256.update(view[:count])
        return count

    def _fill(self, view: memoryview) -> int:
        if self._stream_readinto is not None:
            try:
                return self._stream_readinto(view) or 0
            except NotImplementedError:  # a stream that can only read(), as io.RawIOBase says
                self._stream_readinto = None
        chunk = self._stream.read(len(view))
        view[: len(chunk)] = chunk
        return len(chunk)

    def read(self, size: int = CHUNK_SIZE) -> bytes:
        buffer = bytearray(size if size is not None and size > 0 else CHUNK_SIZE)
        count = self.readinto(buffer)
        return bytes(memoryview(buffer)[:count])

    @property
    def sha256(self) -> str | None:
        return None if self._sha256 is None else self._sha256.hexdigest()
