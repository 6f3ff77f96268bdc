"""The benchmark's one table: Hoard's figure, the peer's and, for small
requests, the floor's (bench/floor.py); Hoard/peer, Hoard/floor, Hoard as a
share of the machine's limit where one applies, and the issue's targets."""

from dataclasses import dataclass, field
from functools import partial

MiB = 1024 * 1024
MB = 1e6
LARGE = 64 * MiB  # transfers from this size on are "large" for the targets


@dataclass
class Row:
    section: str
    measure: str
    unit: str
    hoard: float | None
    peer: float | None
    floor: float | None = None  # the empty Flask app; small requests only
    higher_is_better: bool = True
    compare: bool = True  # False: informative, no ratio
    limit: float | None = None  # the machine's limit for this figure, same unit
    limit_name: str = ""
    target: str = ""
    verdict: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if not self.compare or self.hoard is None or not self.peer:
            return None
        return self.hoard / self.peer

    @property
    def floor_ratio(self) -> float | None:
        if not self.compare or self.hoard is None or not self.floor:
            return None
        return self.hoard / self.floor

    def judge(self, target: str, ok: bool) -> None:
        self.target, self.verdict = target, "PASS" if ok else "FAIL"

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__} | {
            "ratio": self.ratio,
            "floor_ratio": self.floor_ratio,
        }


def transfer_rows(section: str, transfers: dict, machine: dict, *, s3: bool) -> list[Row]:
    rows = []
    for label, figures in transfers.items():
        hoard, peer = figures["hoard"], figures["peer"]
        ceiling = figures.get("limits", machine)  # sampled beside these transfers, at their size
        put = Row(section, f"PUT {label}", "MB/s", hoard["put_mb_s"], peer["put_mb_s"])
        put.limit, put.limit_name = ceiling["disk_write_mb_s"], "fsync'd disk"
        get = Row(section, f"GET {label}", "MB/s", hoard["get_mb_s"], peer["get_mb_s"])
        get.limit, get.limit_name = ceiling["loopback_mb_s"], "loopback"
        if figures["bytes"] >= LARGE:
            if s3:  # through moto, the machine's limits are not the ceiling
                put.judge(">= peer", put.hoard >= put.peer)
                get.judge(">= peer", get.hoard >= get.peer)
            else:
                put.judge(">= peer, >= 80% disk", put.hoard >= put.peer and put.hoard >= 0.8 * put.limit)
                get.judge(">= peer, >= 50% loopback", get.hoard >= get.peer and get.hoard >= 0.5 * get.limit)
        rows += [put, get]
    return rows


SERVERS = ("hoard", "peer", "floor")
TARGET_CONCURRENCIES = (8, 32)
FLOOR_RATE_SHARE = 0.5  # Hoard's req/s at least this share of the floor's
FLOOR_P99_MULTIPLE = 2.0  # Hoard's p99 at most this multiple of the floor's


def _small_row(section: str, key: str, figures: dict, measure: str, unit: str, value, **options) -> Row:
    """`value` of each server's figures for one load, None where a server did not run it or lacks it."""
    got = {name: value(figures[name]) if name in figures else None for name in SERVERS}
    return Row(section, f"{key} {measure}", unit, got["hoard"], got["peer"], got["floor"], **options)


def small_rows(section: str, small: dict, cpus: int) -> list[Row]:
    rows = []
    for key, figures in small.items():
        concurrency = int(key.split("c=")[1])
        row = partial(_small_row, section, key, figures)
        rate = row("req/s", "req/s", lambda f: f["requests_per_s"])
        p50 = row("p50", "ms", lambda f: f["p50_ms"], higher_is_better=False)
        p99 = row("p99", "ms", lambda f: f["p99_ms"], higher_is_better=False)
        # "server": the server's own process tree; then the services it uses.
        probes = {
            probe for name in SERVERS if name in figures for probe in figures[name]["cpu_us_per_request"]
        }
        cpu = [
            row(
                f"{'worker' if probe == 'server' else probe} CPU/req",
                "us",
                lambda f, probe=probe: f["cpu_us_per_request"].get(probe),
                higher_is_better=False,
            )
            for probe in ["server", *sorted(probes - {"server"})]
        ]
        trips = [
            row(
                f"{counter}/req",
                "count",
                lambda f, counter=counter: f["per_request"].get(counter),
                higher_is_better=False,
            )
            for counter in figures["hoard"]["per_request"]
        ]
        shares = [
            row(measure, f"% of {cpus} CPUs", lambda f, share=share: 100 * f[share] / cpus, compare=False)
            for measure, share in (
                ("load generator CPU", "client_cpu_share"),
                ("other processes' CPU", "other_cpu_share"),
            )
        ]
        if concurrency in TARGET_CONCURRENCIES and rate.floor and p99.floor:
            fast = rate.hoard >= FLOOR_RATE_SHARE * rate.floor
            steady = p99.hoard <= FLOOR_P99_MULTIPLE * p99.floor
            rate.judge(
                f">= {FLOOR_RATE_SHARE}x floor, p99 <= {FLOOR_P99_MULTIPLE:.0f}x floor", fast and steady
            )
            if not fast:
                rate.notes.append(f"req/s {rate.hoard / rate.floor:.2f}x floor")
            if not steady:
                rate.notes.append(f"p99 {p99.hoard / p99.floor:.1f}x floor")
        for name in SERVERS:
            if name in figures and figures[name]["errors"]:
                rate.notes.append(f"{name}: {figures[name]['errors']} non-2xx")
        rows += [rate, p50, p99, *cpu, *trips, *shares]
    return rows


def memory_rows(section: str, peaks: dict, transfer_labels: list[str]) -> list[Row]:
    rows = []
    for label in [f"transfer {t}" for t in transfer_labels] + ["small requests", "turbo"]:
        if label in peaks:
            figures = peaks[label]
            rows.append(
                Row(
                    section,
                    f"peak RSS, {label}",
                    "MB",
                    figures["hoard"] / MB,
                    figures["peer"] / MB,
                    higher_is_better=False,
                )
            )
    if len(transfer_labels) >= 2:
        smallest, largest = transfer_labels[0], transfer_labels[-1]
        growth = {
            name: (peaks[f"transfer {largest}"][name] - peaks[f"transfer {smallest}"][name]) / MB
            for name in ("hoard", "peer")
        }
        row = Row(
            section,
            f"RSS growth {smallest} -> {largest}",
            "MB",
            growth["hoard"],
            growth["peer"],
            higher_is_better=False,
        )
        row.judge("<= 50 MB", growth["hoard"] <= 50)
        rows.append(row)
    return rows


def turbo_rows(section: str, figures: dict) -> list[Row]:
    hoard, peer = figures["hoard"], figures["peer"]
    cold = Row(section, "turbo build, cold", "s", hoard["cold_s"], peer["cold_s"], higher_is_better=False)
    warm = Row(section, "turbo build, warm", "s", hoard["warm_s"], peer["warm_s"], higher_is_better=False)
    warm.judge("<= peer", warm.hoard <= warm.peer)
    return [cold, warm]


def build_rows(pass_name: str, result: dict, machine: dict, cpus: int) -> list[Row]:
    s3 = pass_name == "s3"
    return (
        transfer_rows(pass_name, result["transfers"], machine, s3=s3)
        + small_rows(pass_name, result["small"], cpus)
        + memory_rows(pass_name, result["peak_rss"], list(result["transfers"]))
        + turbo_rows(pass_name, result["turbo"])
    )


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("ms", "s", "count"):
        return f"{value:.2f}"
    if unit == "MB" or unit.startswith("%"):
        return f"{value:.1f}"
    return f"{value:,.0f}"


def print_report(machine: dict, capacity: dict, rows: list[Row], cpus: int) -> None:
    print()
    print("machine limits (medians):")
    for name, key, how in (
        ("fsync'd disk write", "disk_write_mb_s", "1 MiB writes then fsync, the servers' filesystem"),
        ("loopback copy", "loopback_mb_s", "sendfile -> recv from another process"),
        ("loopback + SHA-256", "loopback_sha256_mb_s", "hashed as read; the GET client hashes after"),
    ):
        print(f"  {name:19} {machine[key]:8,.0f} MB/s  ({how})")
    for key, figures in capacity.items():
        print(
            f"  load generator {key:9} {figures['requests_per_s']:8,.0f} req/s against a canned node "
            f"responder; {figures['client_cpu_us_per_request']:.0f} us of generator CPU per request"
        )
    header = (
        "pass",
        "measure",
        "unit",
        "Hoard",
        "peer",
        "floor",
        "Hoard/peer",
        "Hoard/floor",
        "better",
        "Hoard of limit",
        "target",
    )
    table = [header]
    for row in rows:
        target = f"{row.target}: {row.verdict}" if row.target else ""
        if row.notes:
            target = f"{target} ({'; '.join(row.notes)})".strip()
        table.append(
            (
                row.section,
                row.measure,
                row.unit,
                _number(row.hoard, row.unit),
                _number(row.peer, row.unit),
                _number(row.floor, row.unit),
                "-" if row.ratio is None else f"{row.ratio:.2f}",
                "-" if row.floor_ratio is None else f"{row.floor_ratio:.2f}",
                "" if not row.compare else "higher" if row.higher_is_better else "lower",
                f"{100 * row.hoard / row.limit:.0f}% of {row.limit:,.0f} {row.limit_name}"
                if row.limit and row.hoard
                else "",
                target,
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    right = {3, 4, 5, 6, 7}
    print()
    for index, line in enumerate(table):
        cells = [
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))
    verdicts = [row.verdict for row in rows if row.verdict]
    print()
    print(
        f"MB = 10^6 bytes; medians over repetitions; {cpus} CPUs shared by the servers and the clients. "
        f"targets: {verdicts.count('PASS')} pass, {verdicts.count('FAIL')} fail."
    )


# ---------------------------------------------------------------- the plain HTTP cache

# The target name of Hoard's plain HTTP cache (/cache/gradle/<key>) in a run.
HTTP_CACHE = "hoard-http"


@dataclass
class HttpCacheRow:
    """One figure of the plain HTTP cache beside the same server's /v8 figure."""

    section: str
    measure: str
    unit: str
    http_cache: float
    v8: float
    higher_is_better: bool = True

    @property
    def ratio(self) -> float | None:
        return self.http_cache / self.v8 if self.v8 else None


def http_cache_rows(section: str, result: dict) -> list[HttpCacheRow]:
    """Large PUT/GET and small HEAD/GET of /cache/gradle/ against /v8, when the run had both."""
    rows = []
    for label, figures in result["transfers"].items():
        if HTTP_CACHE not in figures:
            continue
        for verb in ("put", "get"):
            rows.append(
                HttpCacheRow(
                    section,
                    f"{verb.upper()} {label}",
                    "MB/s",
                    figures[HTTP_CACHE][f"{verb}_mb_s"],
                    figures["hoard"][f"{verb}_mb_s"],
                )
            )
    for key, figures in result["small"].items():
        if HTTP_CACHE not in figures:
            continue
        rows.append(
            HttpCacheRow(
                section,
                f"{key} 1 KiB",
                "req/s",
                figures[HTTP_CACHE]["requests_per_s"],
                figures["hoard"]["requests_per_s"],
            )
        )
        rows.append(
            HttpCacheRow(
                section,
                f"{key} 1 KiB p99",
                "ms",
                figures[HTTP_CACHE]["p99_ms"],
                figures["hoard"]["p99_ms"],
                higher_is_better=False,
            )
        )
    return rows


def print_http_cache(rows: list[HttpCacheRow]) -> None:
    if not rows:
        return
    table = [("pass", "measure", "unit", "/cache/gradle", "/v8", "/cache÷/v8", "better")]
    for row in rows:
        table.append(
            (
                row.section,
                row.measure,
                row.unit,
                _number(row.http_cache, row.unit),
                _number(row.v8, row.unit),
                "-" if row.ratio is None else f"{row.ratio:.2f}",
                "higher" if row.higher_is_better else "lower",
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    print()
    print("the plain HTTP cache (GET/HEAD/PUT on /cache/<tool>/<key>) beside /v8, the same server:")
    for index, line in enumerate(table):
        cells = [
            cell.rjust(width) if column in (3, 4, 5) else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))
