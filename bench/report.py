"""The benchmark's one table: Hoard's figure, the peer's, Hoard/peer, Hoard as
a share of the machine's limit where one applies, and the issue's targets."""

from dataclasses import dataclass, field

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

    def judge(self, target: str, ok: bool) -> None:
        self.target, self.verdict = target, "PASS" if ok else "FAIL"

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__} | {"ratio": self.ratio}


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


def _services_cpu(figures: dict, services: list[str]) -> float | None:
    """CPU per request of the services a server used (its database, moto); None if it used none."""
    used = [name for name in services if name in figures["cpu_us_per_request"]]
    return sum(figures["cpu_us_per_request"][name] for name in used) if used else None


def small_rows(section: str, small: dict, cpus: int) -> list[Row]:
    rows = []
    for key, figures in small.items():
        hoard, peer = figures["hoard"], figures["peer"]
        concurrency = int(key.split("c=")[1])
        rate = Row(section, f"{key} req/s", "req/s", hoard["requests_per_s"], peer["requests_per_s"])
        if "floor" in figures:  # bench/floor.py: the same Flask and gunicorn, doing nothing else
            rate.limit, rate.limit_name = figures["floor"]["requests_per_s"], "empty Flask view"
        p50 = Row(section, f"{key} p50", "ms", hoard["p50_ms"], peer["p50_ms"], higher_is_better=False)
        p99 = Row(section, f"{key} p99", "ms", hoard["p99_ms"], peer["p99_ms"], higher_is_better=False)
        cpu = Row(
            section,
            f"{key} server CPU/req",
            "us",
            hoard["cpu_us_per_request"]["server"],
            peer["cpu_us_per_request"]["server"],
            higher_is_better=False,
        )
        services = sorted({p for f in (hoard, peer) for p in f["cpu_us_per_request"]} - {"server"})
        backing = Row(
            section,
            f"{key} {'+'.join(services)} CPU/req",
            "us",
            _services_cpu(hoard, services),
            _services_cpu(peer, services),
            higher_is_better=False,
        )
        client = Row(
            section,
            f"{key} load generator CPU",
            f"% of {cpus} CPUs",
            100 * hoard["client_cpu_share"] / cpus,
            100 * peer["client_cpu_share"] / cpus,
            compare=False,
        )
        others = Row(
            section,
            f"{key} other processes' CPU",
            f"% of {cpus} CPUs",
            100 * hoard["other_cpu_share"] / cpus,
            100 * peer["other_cpu_share"] / cpus,
            compare=False,
        )
        if concurrency in (8, 32):
            rate.judge(">= peer", rate.hoard >= rate.peer)
            p99.judge("<= peer", p99.hoard <= p99.peer)
        for name in ("hoard", "peer"):
            if figures[name]["errors"]:
                rate.notes.append(f"{name}: {figures[name]['errors']} non-2xx")
        rows += [rate, p50, p99, cpu] + ([backing] if services else []) + [client, others]
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
    if unit in ("ms", "s"):
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
    header = ("pass", "measure", "unit", "Hoard", "peer", "Hoard/peer", "better", "Hoard of limit", "target")
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
                "-" if row.ratio is None else f"{row.ratio:.2f}",
                "" if not row.compare else "higher" if row.higher_is_better else "lower",
                f"{100 * row.hoard / row.limit:.0f}% of {row.limit:,.0f} {row.limit_name}"
                if row.limit and row.hoard
                else "",
                target,
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    right = {3, 4, 5}
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
