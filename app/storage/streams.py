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
        self.size = 0

    def read(self, size: int = CHUNK_SIZE) -> bytes:
        if size is None or size < 0:
            size = CHUNK_SIZE
        if self._expected_size is not None:
            # Never read past the announced length: a keep-alive connection's
            # next request must stay in the socket.
            size = min(size, self._expected_size - self.size)
            if size == 0:
                return b""
        chunk = self._stream.read(size)
        if not chunk:
            if self._expected_size is not None and self.size != self._expected_size:
                raise IncompleteBody(self._expected_size, self.size)
            return b""
        self.size += len(chunk)
        if self.size > self._max_size:
            raise BodyTooLarge(self._max_size)
        if self._sha256 is not None:
            self._sha256.update(chunk)
        return chunk

    def chunks(self, chunk_size: int = CHUNK_SIZE):
        while chunk := self.read(chunk_size):
            yield chunk

    @property
    def sha256(self) -> str | None:
        return None if self._sha256 is None else self._sha256.hexdigest()
