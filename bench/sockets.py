"""Round trips from a server's processes to a service, counted by the kernel.

PostgreSQL's and Redis's clients (libpq, redis-py) set TCP_NODELAY and write
each small request whole, then wait for its answer: every round trip leaves
as one TCP data segment. So the data segments a connection has sent
(`data_segs_out` in `ss -ti`) count its round trips; a request larger than
a segment (64 KiB on loopback) would count more than once.
"""

import os
import re
import subprocess
from contextlib import suppress

from bench.proctree import tree

INODE = re.compile(r"\bino:(\d+)")
DATA_SEGMENTS_OUT = re.compile(r"\bdata_segs_out:(\d+)")


def socket_inodes(pids: list[int]) -> set[int]:
    """Inodes of the sockets the processes hold open."""
    inodes = set()
    for pid in pids:
        with suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def segments_sent(root: int, port: int) -> dict[int, int]:
    """Data segments sent so far on each established TCP connection from
    root's process tree to `port`, by socket inode."""
    listing = subprocess.run(
        ["ss", "--tcp", "--info", "--extended", "--no-header", "state", "established", f"dport = :{port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ours = socket_inodes(tree(root))
    counts = {}
    # One connection per block: its address line, then indented details.
    for block in re.split(r"\n(?=\S)", listing):
        inode = INODE.search(block)
        if inode and int(inode.group(1)) in ours:
            segments = DATA_SEGMENTS_OUT.search(block)  # absent while zero
            counts[int(inode.group(1))] = int(segments.group(1)) if segments else 0
    return counts
