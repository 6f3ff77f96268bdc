"""Closed-loop HTTP/1.1 load: `concurrency` keep-alive connections, each
sending its next request as soon as the previous answer is complete, spread
over worker processes so the generator is not held to one interpreter.

Each worker drives its connections with asyncio Protocols and a minimal
response parser (status line, Content-Length or chunked body, nothing for
HEAD), which costs about ten microseconds of CPU per request. Requests
are pre-rendered bytes. Every worker measures the same window of monotonic
time, after a warm-up on the same connections; a request counts when its
answer completes inside the window, and its latency counts when it was also
sent inside it. The workers report their own CPU time over the window, so
the generator's share of the machine is a figure, not a guess.
"""

import asyncio
import multiprocessing
import re
import statistics
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass

from bench.proctree import increase, machine_busy_seconds, wait_until

CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)")
NS = 1_000_000_000


@dataclass(frozen=True)
class Job:
    port: int
    requests: tuple[bytes, ...]
    head: bool
    connections: int
    first: int  # where this worker's connections start in `requests`
    start_at: float  # time.monotonic() seconds
    duration: float


@dataclass
class WorkerResult:
    completed: int
    statuses: dict[int, int]
    latencies_ns: bytes  # array("q")
    cpu_seconds: float


class _Window:
    def __init__(self, job: Job):
        self.start_ns = int(job.start_at * NS)
        self.end_ns = int((job.start_at + job.duration) * NS)
        self.completed = 0
        self.statuses: dict[int, int] = {}
        self.latencies = array("q")

    def add(self, sent_ns: int, done_ns: int, status: int) -> None:
        if not self.start_ns <= done_ns <= self.end_ns:
            return
        self.completed += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if sent_ns >= self.start_ns:
            self.latencies.append(done_ns - sent_ns)


class _Connection(asyncio.Protocol):
    def __init__(self, job: Job, first: int, window: _Window, done: asyncio.Future):
        self.requests = job.requests
        self.next = first % len(job.requests)
        self.head = job.head
        self.window = window
        self.done = done
        self.buffer = bytearray()

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        self.body_start = -1
        self.sent_ns = time.monotonic_ns()
        self.transport.write(self.requests[self.next])
        self.next = (self.next + 1) % len(self.requests)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self._response_end()
        if end is None:
            return
        now = time.monotonic_ns()
        del self.buffer[:end]
        self.window.add(self.sent_ns, now, self.status)
        if now >= self.window.end_ns:
            self.transport.close()
        else:
            self._send()

    def connection_lost(self, exc) -> None:
        if self.done.done():
            return
        if time.monotonic_ns() < self.window.end_ns:
            self.done.set_exception(ConnectionError(f"the server closed a connection early: {exc!r}"))
        else:
            self.done.set_result(None)

    def _response_end(self) -> int | None:
        buffer = self.buffer
        if self.body_start < 0:
            header_end = buffer.find(b"\r\n\r\n")
            if header_end < 0:
                return None
            head = bytes(buffer[:header_end]).lower()
            self.status = int(head[9:12])
            self.body_start = header_end + 4
            if self.head or self.status in (204, 304):
                self.length = 0
            elif b"\r\ntransfer-encoding: chunked" in head:
                self.length = None
            else:
                match = CONTENT_LENGTH.search(head)
                self.length = int(match.group(1)) if match else 0
        if self.length is not None:
            end = self.body_start + self.length
            return end if len(buffer) >= end else None
        position = self.body_start  # chunked, without trailers
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                return None
            size = int(bytes(buffer[position:line_end]).split(b";")[0], 16)
            position = line_end + 2 + size + 2
            if len(buffer) < position:
                return None
            if size == 0:
                return position


async def _drive(job: Job) -> WorkerResult:
    loop = asyncio.get_running_loop()
    window = _Window(job)
    cpu: dict[str, float] = {}
    loop.call_at(job.start_at, lambda: cpu.__setitem__("start", time.process_time()))
    loop.call_at(job.start_at + job.duration, lambda: cpu.__setitem__("end", time.process_time()))
    finished = []
    for index in range(job.connections):
        done = loop.create_future()
        finished.append(done)
        await loop.create_connection(
            lambda index=index, done=done: _Connection(job, job.first + index * 7, window, done),
            "127.0.0.1",
            job.port,
        )
    # Each connection ends with the first answer after the window; a server
    # that stops answering fails the run rather than hanging it.
    await asyncio.wait_for(asyncio.gather(*finished), job.start_at + job.duration - loop.time() + 60)
    await asyncio.sleep(0.01)  # let the end-of-window CPU mark run
    return WorkerResult(
        completed=window.completed,
        statuses=window.statuses,
        latencies_ns=window.latencies.tobytes(),
        cpu_seconds=cpu.get("end", time.process_time()) - cpu.get("start", 0.0),
    )


def _serve(pipe) -> None:
    while (job := pipe.recv()) is not None:
        try:
            pipe.send(asyncio.run(_drive(job)))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
            pipe.send(exc)


@dataclass
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    completed: int
    errors: int
    statuses: dict[int, int]
    duration: float
    connections: int
    processes: int
    client_cpu_s: float
    probe_cpu_s: dict[str, float]  # each CPU probe's CPU time over the window
    counts: dict[str, float]  # each count probe's increase over the window
    machine_cpu_s: float  # every process on the machine, the above included

    @property
    def other_cpu_s(self) -> float:
        """CPU time used by processes neither probed nor generating load."""
        return max(0.0, self.machine_cpu_s - sum(self.probe_cpu_s.values()) - self.client_cpu_s)

    def per_request_us(self, probe: str) -> float | None:
        if probe not in self.probe_cpu_s:
            return None
        return self.probe_cpu_s[probe] / max(self.completed, 1) * 1e6

    def per_request(self, counter: str) -> float:
        return self.counts[counter] / max(self.completed, 1)

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__} | {
            "other_cpu_s": self.other_cpu_s
        }


def percentile(ordered: list[int], fraction: float) -> float:
    """Nearest rank."""
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


class LoadGenerator:
    """A pool of load worker processes, kept for many runs."""

    def __init__(self, processes: int):
        context = multiprocessing.get_context("spawn")
        self.pipes = []
        self.workers = []
        for _ in range(processes):
            parent, child = context.Pipe()
            worker = context.Process(target=_serve, args=(child,), daemon=True)
            worker.start()
            self.pipes.append(parent)
            self.workers.append(worker)

    def run(
        self,
        port: int,
        requests: list[bytes],
        *,
        head: bool,
        concurrency: int,
        duration: float,
        warmup: float = 1.0,
        cpu_probes: dict[str, Callable[[], dict[int, float]]] | None = None,
        count_probes: dict[str, Callable[[], dict]] | None = None,
    ) -> LoadResult:
        """`concurrency` connections for warmup + duration seconds. Each CPU
        probe (the server's process tree, its database backends...) returns
        CPU seconds used so far by pid, each count probe a running count by
        whatever it counts in (round trips by socket...); the result holds
        each one's increase over the window."""
        probes = {("cpu", name): probe for name, probe in (cpu_probes or {}).items()}
        probes |= {("count", name): probe for name, probe in (count_probes or {}).items()}
        processes = min(concurrency, len(self.workers))
        shares = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
        start_at = time.monotonic() + warmup
        first = 0
        for pipe, share in zip(self.pipes, shares, strict=False):
            pipe.send(Job(port, tuple(requests), head, share, first, start_at, duration))
            first += share
        wait_until(start_at)
        before = {key: probe() for key, probe in probes.items()}
        machine_before = machine_busy_seconds()
        wait_until(start_at + duration)
        machine_cpu = machine_busy_seconds() - machine_before
        grown = {key: increase(before[key], probe()) for key, probe in probes.items()}
        results = [pipe.recv() for pipe in self.pipes[:processes]]
        for result in results:
            if isinstance(result, Exception):
                raise result
        latencies = array("q")
        statuses: dict[int, int] = {}
        for result in results:
            latencies.frombytes(result.latencies_ns)
            for status, count in result.statuses.items():
                statuses[status] = statuses.get(status, 0) + count
        ordered = sorted(latencies)
        completed = sum(result.completed for result in results)
        return LoadResult(
            requests_per_s=completed / duration,
            p50_ms=percentile(ordered, 0.50) / 1e6,
            p99_ms=percentile(ordered, 0.99) / 1e6,
            completed=completed,
            errors=sum(count for status, count in statuses.items() if not 200 <= status < 300),
            statuses=statuses,
            duration=duration,
            connections=concurrency,
            processes=processes,
            client_cpu_s=sum(result.cpu_seconds for result in results),
            probe_cpu_s={name: value for (kind, name), value in grown.items() if kind == "cpu"},
            counts={name: value for (kind, name), value in grown.items() if kind == "count"},
            machine_cpu_s=machine_cpu,
        )

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(None)
        for worker in self.workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()

    def __enter__(self) -> "LoadGenerator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def median_result(results: list[LoadResult]) -> dict:
    """Medians over repetitions of the figures that matter, plus the worst error count."""
    return {
        "requests_per_s": statistics.median(r.requests_per_s for r in results),
        "p50_ms": statistics.median(r.p50_ms for r in results),
        "p99_ms": statistics.median(r.p99_ms for r in results),
        "errors": max(r.errors for r in results),
        "client_cpu_share": statistics.median(r.client_cpu_s / r.duration for r in results),
        "other_cpu_share": statistics.median(r.other_cpu_s / r.duration for r in results),
        "client_cpu_us_per_request": statistics.median(
            r.client_cpu_s / max(r.completed, 1) * 1e6 for r in results
        ),
        "cpu_us_per_request": {
            probe: statistics.median(r.per_request_us(probe) for r in results)
            for probe in results[0].probe_cpu_s
        },
        "per_request": {
            counter: statistics.median(r.per_request(counter) for r in results)
            for counter in results[0].counts
        },
    }
