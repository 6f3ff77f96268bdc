"""Local filesystem backend: objects are files under one root."""

import ctypes
import io
import os
import tempfile
from collections.abc import Callable, Collection
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

from .base import ObjectNotFound, Storage, StorageError, StoredObject
from .keys import partial_tag
from .streams import CHUNK_SIZE, HashingReader

_TMP_DIR = ".tmp"


def _file_mode() -> int:
    """mkstemp creates files 0600; stored objects follow the process umask
    instead, so a front server (nginx serving X-Accel-Redirect) in the group
    can read them. Reading the umask means setting it: done once, when the
    backend is built."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


class _RangeReader(io.RawIOBase):
    """A file limited to `length` bytes from its current position."""

    def __init__(self, fh: BinaryIO, length: int):
        self._fh = fh
        self._left = length

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        chunk = self._fh.read(size)
        self._left -= len(chunk)
        return chunk

    def close(self) -> None:
        self._fh.close()
        super().close()


class LocalStorage(Storage):
    name = "local"

    def __init__(self, root: str):
        self.root = Path(root).resolve()
        self._tmp = self.root / _TMP_DIR
        self._file_mode = _file_mode()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        # Keys come from storage.keys, but never trust a path to stay inside.
        if self.root not in path.parents:
            raise StorageError("key escapes the storage root")
        return path

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        *,
        max_size: int,
        expected_size: int | None = None,
        sha256: bool = True,
    ) -> StoredObject:
        reader = HashingReader(stream, max_size=max_size, expected_size=expected_size, sha256=sha256)
        target = self._path(key)
        self._tmp.mkdir(parents=True, exist_ok=True)
        # The temporary file sits on the same filesystem as the target, so the
        # final rename is atomic: readers see the old object or the new one.
        # Named after the key, so gc can tell whose upload it is (sweep_abandoned).
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix=f"put-{partial_tag(key)}-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), self._file_mode)
                flushed = 0
                buffer = memoryview(bytearray(CHUNK_SIZE))
                while count := reader.readinto(buffer):
                    fh.write(buffer[:count])
                    if reader.size - flushed >= WRITEBACK_BYTES:
                        fh.flush()
                        _start_writeback(fh.fileno(), flushed, reader.size - flushed)
                        flushed = reader.size
                fh.flush()
                os.fsync(fh.fileno())
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, target)
            _fsync_dir(target.parent)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        return StoredObject(key=key, size=reader.size, sha256=reader.sha256)

    def copy(self, source: str, target: str) -> None:
        # Objects are only ever replaced whole (os.replace), never written in
        # place: a hard link shares bytes that cannot change.
        source_path, target_path = self._path(source), self._path(target)
        target_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source_path, target_path)
        except FileNotFoundError as exc:
            raise ObjectNotFound(source) from exc
        _fsync_dir(target_path.parent)

    def open_read(self, key: str, byte_range: tuple[int, int] | None = None) -> BinaryIO:
        try:
            fh = open(self._path(key), "rb")  # noqa: SIM115 - the caller closes it
        except FileNotFoundError as exc:
            raise ObjectNotFound(key) from exc
        if byte_range is None:
            return fh
        start, end = byte_range
        fh.seek(start)
        return io.BufferedReader(_RangeReader(fh, end - start + 1), CHUNK_SIZE)

    def stat(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise ObjectNotFound(key) from exc

    def delete(self, key: str) -> None:
        with suppress(FileNotFoundError):
            self._path(key).unlink()

    def local_path(self, key: str) -> str | None:
        return str(self._path(key))

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self._tmp, prefix="health-"):
                pass
        except OSError as exc:
            raise StorageError("local storage is not writable") from exc

    def sweep_abandoned(self, live_keys: Callable[[], Collection[str]]) -> tuple[int, int]:
        if not self._tmp.exists():
            return 0, 0
        partials = list(os.scandir(self._tmp))
        live = {partial_tag(key) for key in live_keys()}
        count = freed = 0
        for entry in partials:
            # put-<tag>-<random>.part; any other name is no upload's.
            tag = entry.name.split("-")[1] if entry.name.count("-") >= 2 else ""
            if tag in live:
                continue
            with suppress(FileNotFoundError):
                size = entry.stat().st_size
                os.unlink(entry.path)
                count += 1
                freed += size
        return count, freed

    def iter_keys(self, prefix: str):
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        if not base.exists():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            if Path(dirpath) == self.root:
                dirnames[:] = [d for d in dirnames if d != _TMP_DIR]
            for filename in filenames:
                path = Path(dirpath) / filename
                with suppress(FileNotFoundError):
                    info = path.stat()
                    yield str(path.relative_to(self.root)), info.st_size, info.st_mtime


# While a large body arrives, the disk writes what came before: the fsync at
# the end then waits for the tail only, not for the whole body at once.
WRITEBACK_BYTES = 8 * 1024 * 1024
_SYNC_FILE_RANGE_WRITE = 2  # start writeback, do not wait for it


def _linux_sync_file_range():
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    return function


_sync_file_range = _linux_sync_file_range()


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to begin writing this range to disk, without waiting
    (sync_file_range(2), Linux only; elsewhere the final fsync does it all).
    Durability still comes from that fsync alone."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
