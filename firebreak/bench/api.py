"""HTTP API load test on loopback: lookups per second, per server CPU-second, at p99 latency, and
whether the server's memory grows under steady load.

A bench home under the cache folder holds one bank of N random PDQ codes, made from a seed and
kept between runs (the codes are also written as a ThreatExchange local-file list beside it).
`firebreak serve` runs on it as a child process on a free loopback port; C client threads, each
with one keep-alive `http.client` connection and a service key, send lookups without pause:

- 70 % `GET /m/raw_lookup?signal_type=pdq&signal=HEX`, 30 % `POST /v1/lookup`;
- half of them near-duplicates of banked codes (1 to 8 bits flipped: each must match), half
  fresh random codes (which must not: a random 256-bit code is ~128 bits from every other).

After a warm-up (a quarter of the run, at most 30 s; its requests are not counted) the run is
measured for the given time and stops by itself. Latencies go into a histogram of 1 % wide bins
(bounded memory however long the run); the server's CPU time (utime + stime) and resident memory
(VmRSS) are read from /proc every few seconds. Lookups per CPU-second of the server process is
the "per core" figure: the server handles lookups one at a time under its lock, so a core is
what one server process uses at most for them.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import hashlib
import http.client
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firebreak.errors import FirebreakError
from firebreak.exchange.formats import HashRecord, read_local_file, write_local_file
from firebreak.service import Firebreak
from firebreak.settings import Settings
from firebreak.signals.pdq import PdqSignal
from firebreak.store import NewItem, SignalValue

BANK = "api-bench"
ACTOR = "bench-api"
RAW_SHARE = 0.7
"""Share of lookups sent as HMA's `GET /m/raw_lookup`; the rest are `POST /v1/lookup`."""
NEAR_SHARE = 0.5
"""Share of lookups that are near-duplicates of banked codes (the rest are random codes)."""
MAX_FLIPPED_BITS = 8
MAX_WARMUP_S = 30.0
READY_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
MAX_ERRORS = 100
"""The run is abandoned once this many requests have failed."""
LOG_TAIL = 2000

# Latency histogram: bins 1 % wide from 10 µs to 120 s (about 1 600 counters per client).
_HIST_LOW_S = 1e-5
_HIST_RATIO = 1.01
_HIST_EDGES = [
    _HIST_LOW_S * _HIST_RATIO**k
    for k in range(math.ceil(math.log(120.0 / _HIST_LOW_S) / math.log(_HIST_RATIO)) + 1)
]


class ApiBenchFailed(FirebreakError):
    pass


@dataclass(frozen=True)
class ApiBenchReport:
    date: str
    codes: int
    seed: int
    clients: int
    cpus: int
    load_average: float
    """The 1-minute load average when the run started: other work on the CPUs adds noise."""
    build_s: float
    """Seconds spent making the bench home (0: it was cached)."""
    warmup_s: float
    duration_s: float
    """Measured seconds, after the warm-up."""
    lookups: int
    raw_lookups: int
    v1_lookups: int
    hits: int
    """Lookups that matched at least one banked item."""
    wrong: int
    """Near-duplicates that matched nothing, or random codes that matched something."""
    errors: int
    error_samples: tuple[str, ...]
    lookups_per_s: float
    latency_ms: dict[str, float]
    """p50, p95, p99 (upper edges of 1 %-wide bins), mean and max, in milliseconds."""
    server_pid: int
    server_cpu_s: float
    server_cores: float
    """Server CPU seconds per wall second: how many cores it kept busy."""
    lookups_per_cpu_s: float
    """Lookups per CPU-second of the server process: lookups per second per core."""
    client_cpu_s: float
    """CPU seconds the client threads' process spent (on the same machine)."""
    rss_start_mb: float
    """Server RSS in MiB (VmRSS kB / 1024), as are the other RSS figures."""
    rss_end_mb: float
    rss_max_mb: float
    rss_slope_mb_per_10min: float
    """Least-squares slope of the server's RSS over the measured samples."""
    sample_s: float
    rss_samples: tuple[tuple[float, float], ...] = field(repr=False)
    """(seconds from the end of the warm-up, MiB): warm-up samples have negative times."""

    def rows(self) -> list[tuple[str, str]]:
        """The figures, as (name, value) rows for a table."""
        lat = self.latency_ms
        return [
            ("bank", f"{self.codes:,} PDQ codes (seed {self.seed})"),
            ("clients", f"{self.clients} keep-alive connections"),
            ("measured", f"{self.duration_s:.0f} s after {self.warmup_s:.0f} s warm-up"),
            (
                "lookups",
                f"{self.lookups:,} ({self.raw_lookups:,} /m/raw_lookup, "
                f"{self.v1_lookups:,} /v1/lookup; {self.hits:,} hits)",
            ),
            ("errors", f"{self.errors}"),
            ("wrong answers", f"{self.wrong}"),
            ("lookups/s", f"{self.lookups_per_s:,.0f}"),
            (
                "latency",
                f"p50 {lat['p50']:.2f} ms, p95 {lat['p95']:.2f} ms, p99 {lat['p99']:.2f} ms, "
                f"max {lat['max']:.1f} ms",
            ),
            (
                "server CPU",
                f"{self.server_cpu_s:.1f} s ({self.server_cores:.2f} cores busy); "
                f"clients {self.client_cpu_s:.1f} s",
            ),
            (
                "lookups per core",
                f"{self.lookups_per_cpu_s:,.0f} per CPU-second at p99 {lat['p99']:.2f} ms",
            ),
            (
                "server RSS",
                f"start {self.rss_start_mb:.1f} MiB, end {self.rss_end_mb:.1f} MiB, "
                f"max {self.rss_max_mb:.1f} MiB",
            ),
            (
                "RSS slope",
                f"{self.rss_slope_mb_per_10min:+.2f} MiB per 10 min "
                f"({len(self.rss_samples)} samples every {self.sample_s:g} s)",
            ),
            ("load", _load_note(self.load_average, self.cpus)),
        ]

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        report = asdict(self)
        report["rss_samples"] = [list(s) for s in self.rss_samples]
        return report


def _load_note(load: float, cpus: int) -> str:
    note = f"1-minute load average at start {load:.1f} on {cpus} CPUs"
    return note + " (other work was running: figures are noisy)" if load > cpus / 2 else note


# The bench home


def bench_codes(count: int, seed: int) -> list[int]:
    """`count` random 256-bit PDQ codes, the same for the same seed."""
    rng = random.Random(seed)
    return [rng.getrandbits(256) for _ in range(count)]


def _hex(code: int) -> str:
    return f"{code:064x}"


def bench_home(
    cache: Path, codes: int, seed: int, log: Callable[[str], None] | None = None
) -> tuple[Path, float]:
    """The cached home with the bank of `codes` codes; made when missing. Returns the home and
    the seconds spent making it (0 when cached).

    The codes are written as a ThreatExchange local-file list, read back and banked item by item
    in the store, as `firebreak bank import` names them; the index is built once at the end (an
    index update per item would cost a rebuild each)."""
    home = cache / f"home-{codes}-seed{seed}"
    ready = home / "bench-ready.json"
    if ready.exists():
        return home, 0.0
    started = time.monotonic()
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    list_file = cache / f"pdq-{codes}-seed{seed}.te"
    records = [HashRecord("pdq", _hex(c)) for c in bench_codes(codes, seed)]
    list_file.write_text(write_local_file(records))
    records = read_local_file(list_file.read_text(), str(list_file))
    fb = Firebreak(_settings(home))
    try:
        fb.create_bank(BANK, actor=ACTOR)
        for k, record in enumerate(records, start=1):
            value = PdqSignal.validate(record.value)
            digest = hashlib.sha256(f"pdq {value}".encode()).hexdigest()[:16]
            item = NewItem(
                f"pdq-{digest}", "image", 0.0, (SignalValue(PdqSignal.name, value, None, 0.0),)
            )
            fb.store.add_item(BANK, item, ACTOR)
            if log is not None and k % 10_000 == 0:
                log(f"banked {k:,} of {codes:,} codes")
    finally:
        fb.close()
    fb = Firebreak(_settings(home))
    try:
        indexed = len(fb.indexes["frames"])  # built once, from the store
    finally:
        fb.close()
    if indexed != codes:
        raise ApiBenchFailed(f"bench home: {indexed} codes indexed, expected {codes}")
    build_s = time.monotonic() - started
    ready.write_text(json.dumps({"codes": codes, "seed": seed, "build_s": round(build_s, 1)}))
    return home, build_s


def _settings(home: Path) -> Settings:
    return Settings(home=home, database_url=None)


# The server


@dataclass
class _Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def log_tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-LOG_TAIL:].strip()

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise ApiBenchFailed(
                f"the server (firebreak serve) exited with status {code}; its log ends:\n"
                f"{self.log_tail()}"
            )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server(home: Path, key: str, log_path: Path) -> Iterator[_Server]:
    """`firebreak serve` on a free loopback port over `home`, answering; stopped on exit
    (SIGTERM, then SIGKILL). Its access log is discarded; its other log goes to `log_path`."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBREAK_")}
    env["FIREBREAK_HOME"] = str(home)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "firebreak.cli", "serve"),
                *("--host", "127.0.0.1", "--port", str(port)),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    server = _Server(process, port, log_path)
    try:
        _wait_ready(server, key)
        yield server
    finally:
        _stop(process)


def _wait_ready(server: _Server, key: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        server.check_alive()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            conn.request("GET", "/v1/whoami", headers={"Authorization": f"Bearer {key}"})
            response = conn.getresponse()
            body = response.read()
            if response.status == 200:
                return
            last = f"HTTP {response.status}: {body[:200]!r}"
        except OSError as exc:
            last = repr(exc)
        finally:
            conn.close()
        time.sleep(0.2)
    raise ApiBenchFailed(
        f"the server did not answer within {READY_TIMEOUT_S:.0f} s ({last}); its log ends:\n"
        f"{server.log_tail()}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


def _read_proc(server: _Server, read: Callable[[int], float]) -> float:
    """A figure of the running server from /proc; a clear error when it has gone."""
    try:
        return read(server.process.pid)
    except (OSError, ValueError, IndexError, ApiBenchFailed):
        server.check_alive()
        raise


def _proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds, from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; field 3 is fields[0]
    ticks = int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return ticks / os.sysconf("SC_CLK_TCK")


def _proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ApiBenchFailed(f"no VmRSS for process {pid}")


# The clients


@dataclass
class _ClientStats:
    counts: list[int] = field(default_factory=lambda: [0] * (len(_HIST_EDGES) + 1))
    lookups: int = 0
    raw: int = 0
    v1: int = 0
    hits: int = 0
    wrong: int = 0
    total_s: float = 0.0
    max_s: float = 0.0

    def record(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(_HIST_EDGES, seconds)] += 1
        self.lookups += 1
        self.total_s += seconds
        self.max_s = max(self.max_s, seconds)


class _Run:
    """What the clients share: the codes, the phase times, the errors and the stop flag."""

    def __init__(self, port: int, key: str, codes: list[int], measure_at: float, end_at: float):
        self.port = port
        self.headers = {"Authorization": f"Bearer {key}"}
        self.codes = codes
        self.measure_at = measure_at
        self.end_at = end_at
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.errors = 0
        self.error_samples: list[str] = []
        self.crashed: list[str] = []

    def error(self, message: str) -> None:
        with self.lock:
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(message)
            if self.errors >= MAX_ERRORS:
                self.stop.set()


def _client(run: _Run, seed: int, stats: _ClientStats) -> None:
    try:
        _client_loop(run, seed, stats)
    except Exception as exc:  # a bug in the client: reported, and the run stops
        run.crashed.append(repr(exc))
        run.stop.set()


def _client_loop(run: _Run, seed: int, stats: _ClientStats) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", run.port, timeout=REQUEST_TIMEOUT_S)
    post_headers = {**run.headers, "Content-Type": "application/json"}
    try:
        while not run.stop.is_set():
            near = rng.random() < NEAR_SHARE
            code = rng.choice(run.codes) if near else rng.getrandbits(256)
            if near:
                for bit in rng.sample(range(256), rng.randint(1, MAX_FLIPPED_BITS)):
                    code ^= 1 << bit
            raw = rng.random() < RAW_SHARE
            began = time.monotonic()
            if began >= run.end_at:
                break
            try:
                if raw:
                    path = f"/m/raw_lookup?signal_type=pdq&signal={_hex(code)}"
                    conn.request("GET", path, headers=run.headers)
                else:
                    body = json.dumps({"signal_type": "pdq", "value": _hex(code)})
                    conn.request("POST", "/v1/lookup", body=body, headers=post_headers)
                response = conn.getresponse()
                data = response.read()
                elapsed = time.monotonic() - began
                if response.status != 200:
                    run.error(
                        f"{'GET /m/raw_lookup' if raw else 'POST /v1/lookup'}: HTTP "
                        f"{response.status} {data[:200]!r}"
                    )
                    continue
                matches = json.loads(data)["matches"]
            except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
                run.error(f"{'GET /m/raw_lookup' if raw else 'POST /v1/lookup'}: {exc!r}")
                conn.close()  # reconnects on the next request
                continue
            if began < run.measure_at:
                continue
            stats.record(elapsed)
            stats.raw += raw
            stats.v1 += not raw
            stats.hits += bool(matches)
            stats.wrong += bool(matches) != near
    finally:
        conn.close()


def _percentile_s(counts: list[int], q: float) -> float:
    """The upper edge of the bin holding the `q`-th percentile (0 when nothing was counted)."""
    total = sum(counts)
    if total == 0:
        return 0.0
    rank = math.ceil(q / 100 * total)
    seen = 0
    for k, n in enumerate(counts):
        seen += n
        if seen >= rank:
            return _HIST_EDGES[min(k, len(_HIST_EDGES) - 1)]
    return _HIST_EDGES[-1]


def _slope_per_s(samples: list[tuple[float, float]]) -> float:
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in samples) / var


# The benchmark


def run_api_bench(
    cache: Path,
    *,
    seconds: float = 120.0,
    codes: int = 100_000,
    clients: int = 4,
    seed: int = 0,
    sample_s: float | None = None,
    log: Callable[[str], None] | None = None,
) -> ApiBenchReport:
    """Serve a bank of `codes` random PDQ codes on loopback and look codes up from `clients`
    threads for a warm-up and then `seconds` measured; report throughput, latency, the server's
    CPU time and its RSS over time. Raises ApiBenchFailed when the server fails to start, exits,
    or refuses MAX_ERRORS requests."""
    if seconds <= 0 or codes < 1 or clients < 1:
        raise ApiBenchFailed("seconds, codes and clients must be positive")
    load = os.getloadavg()[0]
    home, build_s = bench_home(cache, codes, seed, log)
    banked = bench_codes(codes, seed)
    warmup_s = min(MAX_WARMUP_S, seconds / 4)
    sample_s = sample_s or min(5.0, max(0.25, seconds / 20))
    key_name = f"bench-api-{os.getpid()}-{time.time_ns()}"
    fb = Firebreak(_settings(home))
    try:
        _, key = fb.store.keys.create(key_name, "service", ACTOR)
    finally:
        fb.close()
    try:
        with running_server(home, key, cache / "server.log") as server:
            pid = server.process.pid
            if log is not None:
                log(
                    f"server {pid} on port {server.port}: {warmup_s:g} s warm-up, "
                    f"{seconds:g} s measured, {clients} clients"
                )
            measured = _drive(server, key, banked, clients, seed, warmup_s, seconds, sample_s)
    finally:
        fb = Firebreak(_settings(home))
        try:
            fb.store.keys.revoke(key_name, ACTOR)
        finally:
            fb.close()
    return _report(measured, codes, seed, clients, load, build_s, warmup_s, sample_s, pid)


@dataclass
class _Measured:
    stats: list[_ClientStats]
    run: _Run
    duration_s: float
    cpu_s: float
    client_cpu_s: float
    samples: list[tuple[float, float]]


def _drive(
    server: _Server,
    key: str,
    banked: list[int],
    clients: int,
    seed: int,
    warmup_s: float,
    seconds: float,
    sample_s: float,
) -> _Measured:
    began = time.monotonic()
    run = _Run(server.port, key, banked, began + warmup_s, began + warmup_s + seconds)
    stats = [_ClientStats() for _ in range(clients)]
    threads = [
        threading.Thread(
            target=_client, args=(run, seed * 1000 + k + 1, stats[k]), name=f"api-bench-{k}"
        )
        for k in range(clients)
    ]
    samples: list[tuple[float, float]] = []
    cpu_start = client_cpu_start = measure_start = 0.0
    measuring = False
    for thread in threads:
        thread.start()
    try:
        next_sample = began
        while not run.stop.is_set():
            now = time.monotonic()
            if now >= run.end_at:
                break
            if not measuring and now >= run.measure_at:
                measuring = True
                measure_start = now
                cpu_start = _read_proc(server, _proc_cpu_s)
                client_cpu_start = time.process_time()
                samples.append((now - run.measure_at, _read_proc(server, _proc_rss_mb)))
                next_sample = now + sample_s
            elif now >= next_sample:
                samples.append((now - run.measure_at, _read_proc(server, _proc_rss_mb)))
                next_sample += sample_s
            server.check_alive()
            wake = min(next_sample, run.end_at, run.end_at if measuring else run.measure_at)
            time.sleep(min(0.5, max(0.0, wake - time.monotonic())))
        if not measuring:
            raise ApiBenchFailed("the run stopped before its warm-up ended")
        measure_end = time.monotonic()
        cpu_end = _read_proc(server, _proc_cpu_s)
        client_cpu_end = time.process_time()
        samples.append((measure_end - run.measure_at, _read_proc(server, _proc_rss_mb)))
    finally:
        run.stop.set()
        for thread in threads:
            thread.join(timeout=REQUEST_TIMEOUT_S + 5)
    server.check_alive()
    if run.crashed:
        raise ApiBenchFailed(f"a client crashed: {run.crashed[0]}")
    if run.errors >= MAX_ERRORS:
        raise ApiBenchFailed(
            f"{run.errors} requests failed, abandoned; first: {'; '.join(run.error_samples)}\n"
            f"server log ends:\n{server.log_tail()}"
        )
    return _Measured(
        stats,
        run,
        measure_end - measure_start,
        cpu_end - cpu_start,
        client_cpu_end - client_cpu_start,
        samples,
    )


def _report(
    m: _Measured,
    codes: int,
    seed: int,
    clients: int,
    load: float,
    build_s: float,
    warmup_s: float,
    sample_s: float,
    pid: int,
) -> ApiBenchReport:
    counts = [sum(s.counts[k] for s in m.stats) for k in range(len(_HIST_EDGES) + 1)]
    lookups = sum(s.lookups for s in m.stats)
    measured = [(t, v) for t, v in m.samples if t >= 0]
    rss = [v for _, v in measured]
    return ApiBenchReport(
        date=dt.date.today().isoformat(),
        codes=codes,
        seed=seed,
        clients=clients,
        cpus=os.cpu_count() or 1,
        load_average=round(load, 2),
        build_s=round(build_s, 1),
        warmup_s=round(warmup_s, 2),
        duration_s=round(m.duration_s, 2),
        lookups=lookups,
        raw_lookups=sum(s.raw for s in m.stats),
        v1_lookups=sum(s.v1 for s in m.stats),
        hits=sum(s.hits for s in m.stats),
        wrong=sum(s.wrong for s in m.stats),
        errors=m.run.errors,
        error_samples=tuple(m.run.error_samples),
        lookups_per_s=round(lookups / m.duration_s, 1) if m.duration_s > 0 else 0.0,
        latency_ms={
            "p50": round(1000 * _percentile_s(counts, 50), 3),
            "p95": round(1000 * _percentile_s(counts, 95), 3),
            "p99": round(1000 * _percentile_s(counts, 99), 3),
            "mean": round(1000 * sum(s.total_s for s in m.stats) / max(lookups, 1), 3),
            "max": round(1000 * max((s.max_s for s in m.stats), default=0.0), 3),
        },
        server_pid=pid,
        server_cpu_s=round(m.cpu_s, 2),
        server_cores=round(m.cpu_s / m.duration_s, 3) if m.duration_s > 0 else 0.0,
        lookups_per_cpu_s=round(lookups / m.cpu_s, 1) if m.cpu_s > 0 else 0.0,
        client_cpu_s=round(m.client_cpu_s, 2),
        rss_start_mb=round(rss[0], 2) if rss else 0.0,
        rss_end_mb=round(rss[-1], 2) if rss else 0.0,
        rss_max_mb=round(max(rss), 2) if rss else 0.0,
        rss_slope_mb_per_10min=round(600 * _slope_per_s(measured), 3),
        sample_s=sample_s,
        rss_samples=tuple((round(t, 2), round(v, 2)) for t, v in m.samples),
    )
