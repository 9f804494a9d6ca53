"""Polling at scale: 10,000 local feeds every 5 minutes, default settings, measured over cycles.

A separate server process (bench/feedfarm.py) serves the feeds on 127.0.0.1 … 127.0.0.100 with
the mix of issue 17: 60 % answer 304, 25 % unchanged, 10 % changed, 4 % slow, 1 % failing.
`monitor run` polls them with its default settings and 500 rules; 100 sentinel feeds put a new
item with its own rule's token into every cycle, and an alert receiver in this process notes
when each token's alert arrives.

Figures, over the cycles after the first (the first polls all 10,000 at once by design):
  cpu_share        CPU-seconds per wall-second of each monitor process (1.0 = one core)
  lag_p50_s/p99_s  poll start past the source's scheduled time (the schedule holds the jitter),
                   from the daemon's own monitor_poll_lag_seconds histogram
  rss_mb           peak RSS of each monitor process
  alert_p50_s/p99_s  sentinel item first served → its alert received (the interval excluded)
  polls_per_interval  requests per source per interval, mean and max (1.0: each once)
  ready_s          start → READY=1
Targets (issue 17): cpu_share < 0.15, lag p99 < 15 s, RSS < 300 MB, alert p99 < 5 s; with two
instances on PostgreSQL each source once per interval and each instance near half the CPU.

Usage: python bench/sources.py [--sources 10000] [--interval 300] [--cycles 3]
                               [--instances 2 --database postgresql+psycopg://…]
The last line printed is a JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import nullcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import feedfarm  # noqa: E402
from pipeline import free_port  # noqa: E402

TOKEN = re.compile(r"SENT(\d{5})C(\d{2})|哨兵(\d{5})-(\d{2})")  # the item's token, or its rule's name (a digest lists those)


class Receiver:
    """apprise json:// posts land here; the first arrival of each token is kept."""

    def __init__(self):
        self.seen: dict[str, float] = {}
        lock = threading.Lock()
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                now = time.time()
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
                try:  # apprise's json:// escapes Chinese as \uXXXX
                    payload = json.loads(raw)
                    text = f"{payload.get('title', '')}\n{payload.get('message', '')}"
                except (ValueError, AttributeError):
                    text = raw
                with lock:
                    for m in TOKEN.finditer(text):
                        feed, cycle = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
                        seen.setdefault(f"SENT{feed}C{cycle}", now)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def write_rules(path: Path, sources: int, cycles: int) -> int:
    rules = [f'[[rule]]\nname = "哨兵{n:05d}-{c:02d}"\nterms = ["SENT{n:05d}C{c:02d}"]\nseverity = "一般"\n'
             for n in range(sources) if feedfarm.sentinel(n) for c in range(cycles + 3)]
    rules += [f'[[rule]]\nname = "填充{k}"\nterms = ["填充词甲{k}号"]\nseverity = "一般"\n' for k in range(max(0, 500 - len(rules)))]
    path.write_text("\n".join(rules), encoding="utf-8")
    return len(rules)


def write_config(folder: Path, name: str, farm_port: int, receiver: int, metrics: int, sources: int, interval: float,
                 database: str | None) -> Path:
    (folder / "apprise.yml").write_text(f"version: 1\nurls:\n  - json://127.0.0.1:{receiver}/hook:\n      tag: duty, lead, leader\n",
                                        encoding="utf-8")
    lines = [
        'watchwords = "rules.toml"',
        "[database]", f'url = "{database or "sqlite:///" + str(folder / "bench.db")}"',
        "[daemon]", f'state_dir = "{folder / ("state-" + name)}"', 'log_level = "WARNING"',
        "[alerts]", 'apprise_config = "apprise.yml"',
        "[report]", "enabled = false",
        "[metrics]", f'listen = "127.0.0.1:{metrics}"',
    ]
    for n in range(sources):
        host = n % 100 + 1
        lines += ["[[source]]", f'name = "feed{n}"', f'url = "http://127.0.0.{host}:{farm_port}/feed{n}.xml"', f'interval = "{interval:g}s"']
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024


def lag_buckets(port: int) -> dict[float, float]:
    from prometheus_client.parser import text_string_to_metric_families

    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name == "monitor_poll_lag_seconds":
            for s in family.samples:
                if s.name.endswith("_bucket"):
                    out[float(s.labels["le"])] = s.value
    return out


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """Prometheus's histogram_quantile: linear within the bucket that holds the rank."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if not total:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for le in bounds:
        if buckets[le] >= rank:
            if le == float("inf"):
                return lower
            return round(lower + (le - lower) * (rank - below) / max(buckets[le] - below, 1e-9), 2)
        lower, below = le, buckets[le]
    return lower


def pct(values: list[float], q: float) -> float | None:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 2) if values else None


def _all_alerted(farm_log: Path, receiver: Receiver, t0: float, t1: float) -> bool:
    for line in farm_log.read_text().splitlines():
        if '"token"' in line:
            row = json.loads(line)
            if t0 <= row["served"] < t1 and row["token"] not in receiver.seen:
                return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=10_000)
    ap.add_argument("--interval", type=float, default=300, help="seconds")
    ap.add_argument("--cycles", type=int, default=3, help="measured cycles after the first")
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("--database", help="a PostgreSQL URL for several instances (default: SQLite)")
    ap.add_argument("--keep", help="keep the store, logs and configs in this folder (default: a temporary one, removed)")
    args = ap.parse_args()
    if args.instances > 1 and not args.database:
        sys.exit("several instances need --database postgresql+psycopg://…")

    with (nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory(prefix="monitor-sources-bench-")) as tmp:
        folder = Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        farm_port, receiver = free_port(), Receiver()
        farm_log = folder / "farm.jsonl"
        farm = subprocess.Popen([sys.executable, str(REPO / "bench" / "feedfarm.py"), "--port", str(farm_port),
                                 "--interval", str(args.interval), "--log", str(farm_log)])
        rules = write_rules(folder / "rules.toml", args.sources, args.cycles)
        ports = [free_port() for _ in range(args.instances)]
        configs = [write_config(folder, f"m{i}", farm_port, receiver.port, ports[i], args.sources, args.interval, args.database)
                   for i in range(args.instances)]
        procs, socks, ready = [], [], []
        try:
            for i, cfg in enumerate(configs):
                sock_path = str(folder / f"notify{i}.sock")
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.bind(sock_path)
                sock.settimeout(300)
                socks.append(sock)
                started = time.perf_counter()
                procs.append(subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(cfg)],
                                              env=dict(os.environ, NOTIFY_SOCKET=sock_path), stdout=subprocess.DEVNULL,
                                              stderr=open(folder / f"m{i}.log", "w")))
                while "READY=1" not in sock.recv(4096).decode():
                    pass
                ready.append(round(time.perf_counter() - started, 2))
            print(f"{args.instances} instance(s) ready in {ready} s with {args.sources} sources and {rules} rules", flush=True)
            time.sleep(args.interval)  # the first cycle: everything due at once
            t0, cpu0, lag0 = time.time(), [cpu_seconds(p.pid) for p in procs], [lag_buckets(port) for port in ports]
            for c in range(args.cycles):
                time.sleep(args.interval)
                print(f"cycle {c + 1}/{args.cycles} done", flush=True)
            t1, cpu1, lag1 = time.time(), [cpu_seconds(p.pid) for p in procs], [lag_buckets(port) for port in ports]
            rss = [round(peak_rss_mb(p.pid), 1) for p in procs]
            deadline = time.time() + 60  # alerts of the window's last items are still under way
            while time.time() < deadline and not _all_alerted(farm_log, receiver, t0, t1):
                time.sleep(1)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=60)
            farm.terminate()
            farm.wait(timeout=10)
        for i in range(args.instances):
            errors = [line for line in (folder / f"m{i}.log").read_text().splitlines() if "Traceback" in line or " ERROR " in line]
            if errors:
                print(f"instance {i}: {len(errors)} error lines, first: {errors[0][:300]}")
        served, polls = {}, Counter()
        for line in farm_log.read_text().splitlines():
            row = json.loads(line)
            if "token" in row:
                served[row["token"]] = row["served"]
            elif t0 <= row["t"] < t1:
                polls[row["feed"]] += 1
        measured = {k: v for k, v in served.items() if t0 <= v < t1}
        latencies = [receiver.seen[k] - v for k, v in measured.items() if k in receiver.seen]
        lag = {le: sum(b1[le] - b0.get(le, 0) for b0, b1 in zip(lag0, lag1)) for le in lag1[0]}
        per_interval = [polls[n] / args.cycles for n in range(args.sources) if feedfarm.kind(n) in ("etag", "same", "changed")]
        figures = {
            "sources": args.sources, "interval_s": args.interval, "cycles": args.cycles, "instances": args.instances,
            "cpu_share": [round((b - a) / (t1 - t0), 3) for a, b in zip(cpu0, cpu1)],
            "lag_p50_s": quantile(lag, 0.5), "lag_p99_s": quantile(lag, 0.99),
            "rss_mb": rss, "ready_s": ready,
            "alert_p50_s": pct(latencies, 0.5), "alert_p99_s": pct(latencies, 0.99),
            "alerts": len(latencies), "alerts_missing": len(measured) - len(latencies),
            "polls_per_interval_mean": round(sum(per_interval) / len(per_interval), 3), "polls_per_interval_max": max(per_interval),
        }
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
