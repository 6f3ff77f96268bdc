"""The machine's own limits, measured in the same run as the servers:

- disk: a file written in 1 MiB blocks and fsync'd before the clock stops,
  in the directory the servers store into;
- loopback: a file sent with sendfile(2) over TCP on 127.0.0.1 by another
  process, read into one reused buffer (and, separately, also hashed with
  SHA-256, which is what the benchmark's GET client does with every byte).
"""

import hashlib
import multiprocessing
import os
import socket
import time
from pathlib import Path

MiB = 1024 * 1024
POOL_BLOCKS = 16  # distinct random 1 MiB blocks the disk test cycles through


def disk_write_mb_s(directory: Path, size: int) -> float:
    """MB/s for writing `size` bytes and fsync'ing them, the file then removed."""
    pool = [os.urandom(MiB) for _ in range(POOL_BLOCKS)]
    path = directory / f".disk-limit-{os.getpid()}"
    os.sync()  # start without anyone else's dirty pages queued ahead of ours
    started = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        written = 0
        while written < size:
            written += os.write(fd, pool[(written // MiB) % POOL_BLOCKS][: size - written])
        os.fsync(fd)
    finally:
        os.close(fd)
    seconds = time.perf_counter() - started
    path.unlink()
    return size / 1e6 / seconds


def _send_file(pipe, path: str, count: int) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener, open(path, "rb") as source:
        pipe.send(listener.getsockname()[1])
        for _ in range(count):
            conn, _ = listener.accept()
            with conn:
                conn.sendfile(source, 0)


def loopback_mb_s(path: Path, repetitions: int) -> dict[str, list[float]]:
    """MB/s per repetition for the file sent over loopback by another process
    and read by this one: plain, and hashed while read."""
    context = multiprocessing.get_context("spawn")  # the bench has threads by now: no fork
    parent, child = context.Pipe()
    sender = context.Process(target=_send_file, args=(child, str(path), 2 * repetitions), daemon=True)
    sender.start()
    results: dict[str, list[float]] = {"plain": [], "sha256": []}
    buffer = bytearray(MiB)
    view = memoryview(buffer)
    try:
        port = parent.recv()
        for _ in range(repetitions):
            for mode in results:
                digest = hashlib.sha256() if mode == "sha256" else None
                received = 0
                with socket.create_connection(("127.0.0.1", port)) as conn:
                    started = time.perf_counter()
                    while count := conn.recv_into(view):
                        if digest is not None:
                            digest.update(view[:count])
                        received += count
                    seconds = time.perf_counter() - started
                results[mode].append(received / 1e6 / seconds)
    finally:
        sender.join(timeout=30)
        if sender.is_alive():
            sender.kill()
    return results
