"""A server's whole process tree, read from /proc: summed RSS and CPU time,
and a sampler that keeps each tree's peak RSS per labelled phase."""

import os
import threading
import time
from contextlib import contextmanager, suppress

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree(root: int) -> list[int]:
    """root and every descendant still alive, parents first."""
    pids, index = [root], 0
    while index < len(pids):
        pid = pids[index]
        index += 1
        with suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                with suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as children:
                    pids.extend(int(child) for child in children.read().split())
    return pids


def rss_by_pid(pids: list[int]) -> dict[int, int]:
    """VmRSS of each process still alive, in bytes."""
    figures = {}
    for pid in pids:
        with suppress(OSError), open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    figures[pid] = int(line.split()[1]) * 1024
                    break
    return figures


def rss_bytes(pids: list[int]) -> int:
    """Sum of VmRSS; pages shared between the processes count once per process."""
    return sum(rss_by_pid(pids).values())


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """User plus system CPU seconds each process still alive has used so far."""
    figures = {}
    for pid in pids:
        with suppress(OSError), open(f"/proc/{pid}/stat") as stat:
            # The command name may hold spaces; the fields after it do not.
            fields = stat.read().rsplit(")", 1)[1].split()
            figures[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    return figures


def increase(before: dict, after: dict) -> float:
    """How much a figure kept per process (or per socket) grew between two
    readings, summed: CPU seconds from cpu_by_pid, say. Keys that appeared in
    between count from zero; those that vanished in between are lost."""
    return sum(value - before.get(key, 0.0) for key, value in after.items())


def tree_cpu(root: int) -> dict[int, float]:
    return cpu_by_pid(tree(root))


def machine_busy_seconds() -> float:
    """CPU time every process on the machine has used so far (all CPUs, not idle or iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


class PeakSampler(threading.Thread):
    """Samples the RSS of each named tree every `interval` seconds; while a
    phase is open, keeps each tree's highest sample under that phase's label,
    and each process's own highest, to tell which one grew."""

    def __init__(self, roots: dict[str, int], interval: float = 0.05):
        super().__init__(daemon=True)
        self.roots = dict(roots)
        self.interval = interval
        self.peaks: dict[str, dict[str, int]] = {}
        self.process_peaks: dict[str, dict[str, dict[int, int]]] = {}
        self._open: set[str] = set()
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def sample(self) -> None:
        figures = {name: rss_by_pid(tree(root)) for name, root in self.roots.items()}
        with self._lock:
            for label in self._open:
                peaks = self.peaks[label]
                for name, by_pid in figures.items():
                    peaks[name] = max(peaks.get(name, 0), sum(by_pid.values()))
                    own = self.process_peaks[label].setdefault(name, {})
                    for pid, rss in by_pid.items():
                        own[pid] = max(own.get(pid, 0), rss)

    @contextmanager
    def phase(self, label: str):
        with self._lock:
            self.peaks.setdefault(label, {})
            self.process_peaks.setdefault(label, {})
            self._open.add(label)
        self.sample()
        try:
            yield
        finally:
            self.sample()
            with self._lock:
                self._open.discard(label)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def wait_until(deadline: float) -> None:
    """Sleep until time.monotonic() reaches deadline."""
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.5))
