"""The storage interface and its neutral errors.

Backends store opaque bytes under keys built by storage.keys. They know
nothing of tenants, artifacts or HTTP; optional abilities return None where a
backend lacks them.
"""

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote

# How much every backend reads or writes at a time.
CHUNK_SIZE = 1024 * 1024


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback and the exact name in RFC 5987 form.

    Here, not in the HTTP layer: presigned GETs carry it too.
    """
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\;%' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


class StorageError(Exception):
    """The backend failed (disk, network, permissions)."""


class ObjectNotFound(StorageError):
    pass


class BodyTooLarge(StorageError):
    def __init__(self, max_size: int):
        super().__init__(f"body exceeds {max_size} bytes")
        self.max_size = max_size


class IncompleteBody(StorageError):
    """The body ended before (or ran past) the length the client announced."""

    def __init__(self, expected: int, received: int):
        super().__init__(f"expected {expected} bytes, received {received}")
        self.expected = expected
        self.received = received


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str | None  # None when the caller asked not to hash


@dataclass(frozen=True)
class PresignedPut:
    url: str
    headers: dict[str, str]


class Storage(ABC):
    name: str

    @abstractmethod
    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        *,
        max_size: int,
        expected_size: int | None = None,
        sha256: bool = True,
    ) -> StoredObject:
        """Stream `stream` to `key`, counting (and, with sha256, hashing) as it flows.

        The object becomes visible only once complete; on any error nothing
        is left under `key` (an earlier object there stays intact).
        """

    @abstractmethod
    def open_read(self, key: str, byte_range: tuple[int, int] | None = None) -> BinaryIO:
        """A readable file-like object; `byte_range` is inclusive (start, end)."""

    @abstractmethod
    def stat(self, key: str) -> int:
        """The object's size in bytes; ObjectNotFound when absent."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; absent objects are not an error."""

    @abstractmethod
    def copy(self, source: str, target: str) -> None:
        """Copy an object to a new key, inside the store; ObjectNotFound when
        the source is absent. Read the target to learn what was copied: the
        source may be replaced meanwhile."""

    def hash_object(self, key: str) -> StoredObject:
        """Read the whole object back and return its size and SHA-256."""
        digest = hashlib.sha256()
        size = 0
        with self.open_read(key) as fh:
            while chunk := fh.read(CHUNK_SIZE):
                digest.update(chunk)
                size += len(chunk)
        return StoredObject(key=key, size=size, sha256=digest.hexdigest())

    def local_path(self, key: str) -> str | None:
        return None

    def presign_get(
        self, key: str, *, expires_in: int, filename: str | None = None, content_type: str | None = None
    ) -> str | None:
        """A URL that serves the object directly, as an attachment named `filename`."""
        return None

    def presign_put(self, key: str, *, expires_in: int, size: int, content_type: str) -> PresignedPut | None:
        """A URL that stores exactly `size` bytes at `key` in one PUT.

        `headers` are the ones the client must send besides Content-Length,
        which its HTTP library sets from the body.
        """
        return None

    @abstractmethod
    def check(self) -> None:
        """Raise StorageError when the backend cannot serve."""

    @abstractmethod
    def sweep_abandoned(self, live_keys: Callable[[], Collection[str]]) -> tuple[int, int]:
        """Remove the temporary/partial uploads whose key live_keys() does not
        name; (count, bytes). The partials are listed first and live_keys
        called after, so an upload that starts meanwhile is never taken."""

    @abstractmethod
    def iter_keys(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        """Yield (key, size, modified_unix) for every object under the prefix,
        which is "" or ends with "/"."""
