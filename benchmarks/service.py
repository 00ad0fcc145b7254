"""The always-on service's performance, against a real Kafka broker the benchmark starts itself.

Targets (issue "The always-on service", Targets): one worker processes declarations at least
half as fast as a bare Faust agent that only decodes each message's JSON, in the same run, and at
8,000 declarations/s or more; at 2,000 declarations/s, alerts follow the record that completed
their evidence within 1 s at the 99th percentile; a worker restarts with 100,000 series in
state in a time that is measured and reported.

Usage::

    python -m benchmarks.service --more-baselines --profile --write-doc docs/performance.md  # ~10 minutes
    python -m benchmarks.service --quick                                                    # 2-3 minutes
    python -m benchmarks.service --steps latency,restart --variant ../other-checkout        # a change

Three steps (``--steps``), every worker a ``python -m transitwatch.streams.cli worker`` subprocess with a fresh
app id and topics of its own (``TRANSITWATCH_*`` settings):

``throughput``
    ``--declarations`` generated declarations (:mod:`benchmarks.scenarios.declarations`, date
    order) are published beforehand with :func:`transitwatch.streams.produce.produce` (keyed by HS6). Then,
    alternating, ``--repeat`` times each: the baseline (:mod:`benchmarks.service_baseline`, a
    bare Faust agent on the same topic, its own group, ``orjson.loads`` per message; it times
    itself from its first message to its last) and the worker (timed from its own counters on
    ``/metrics``, scraped every 0.1 s: from the last scrape with nothing consumed to the first
    with every declaration consumed and every forwarded record processed). Medians reported.
``latency``
    A fresh worker; the labelled scenario (:mod:`benchmarks.scenarios.labelled`, history
    included so that alerts appear) is published at ``--latency-rate`` messages a second while it
    runs (``--latency-repeat`` runs, the target judged on the median of their p99). Every alert on
    the alerts topic is set against the input record that completed its evidence
    (:func:`benchmarks.service_analysis.attribute`), both Kafka timestamps read back from the topics.
``restart``
    A worker builds state for ``--series`` series (one closed month, part of the next), is
    stopped with SIGTERM, then restarted: time from process start to ``/ready`` and to the first
    records processed (a probe of one declaration per goods group, published before the start);
    then the same after SIGKILL. The changelog's size is read from the broker.

``--profile`` adds one worker throughput run with py-spy attached (``pip install py-spy``), and
profiles the first latency run. ``--variant DIR`` runs the worker of another checkout too (a
change under test): alternating with this one's for throughput and latency, after it for the
restart. The report is
:mod:`benchmarks.service_report`; the pure helpers (scrapes, throughput, latency attribution,
state lanes, profile shares) are :mod:`benchmarks.service_analysis`, tested without a broker.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from benchmarks.service_analysis import (
    AlertMessage,
    InputMessage,
    Progress,
    attribute,
    histogram_quantile,
    lanes,
    latency_summary,
    profile_summary,
    state_lines,
    throughput,
)
from benchmarks.service_kafka import (
    ROOT,
    BenchmarkError,
    Deployment,
    WorkerProcess,
    create_topics,
    disk_bytes,
    end_offsets,
    cpu_seconds,
    free_port,
    publish_paced,
    read_topic,
)
from benchmarks.service_report import WARMUP_S, render, write_doc

STEPS = ("throughput", "latency", "restart")
SCRAPE_S = 0.1
Log = Callable[[str], None]


# -- inputs -------------------------------------------------------------------------------------

def _write_lines(path: Path, rows: list[dict[str, Any]]) -> Path:
    tmp = path.with_suffix(".part")
    tmp.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    tmp.replace(path)
    return path


def declarations_file(workdir: Path, n: int, seed: int) -> Path:
    """Generated declarations in date order (as a customs system publishes them), cached."""
    from benchmarks.scenarios.declarations import write

    path = workdir / f"declarations-{n}-seed{seed}.jsonl"
    if not path.exists():
        tmp = path.with_suffix(".part.jsonl")
        write(tmp, n, seed)
        tmp.replace(path)
    return path


def labelled_file(workdir: Path, hub_series: int, months: int, seed: int) -> Path:
    """The labelled scenario's declarations (history included: alerts appear), in date order."""
    from benchmarks.scenarios import labelled

    path = workdir / f"labelled-{hub_series}-{months}-seed{seed}.jsonl"
    if not path.exists():
        rows = labelled.generate(seed=seed, hub_series=hub_series, months=months).declarations
        _write_lines(path, sorted(rows, key=lambda r: r["date"]))
    return path


def state_file(workdir: Path, series: int, open_share: float, seed: int) -> tuple[Path, int]:
    """Declarations for ``series`` watched lanes (see :func:`state_lines`); returns (path, lines)."""
    from transitwatch.detectors.contract import COUNTRY_CODES
    from transitwatch.detectors.watch import WatchConfig

    cfg = WatchConfig.default()
    partners = sorted(cfg.hubs | cfg.destinations)
    reporters = sorted(COUNTRY_CODES - set(partners))
    rows = state_lines(lanes(reporters, partners, sorted(cfg.flows), sorted(cfg.hs6), series),
                       open_share=open_share, seed=seed)
    return _write_lines(workdir / f"state-{series}-{open_share}-seed{seed}.jsonl", rows), len(rows)


def _settings(bootstrap: str, declarations: str, monthly: str) -> Any:
    from transitwatch.streams.settings import Settings

    return Settings(broker=f"kafka://{bootstrap}", declarations_topic=declarations, monthly_topic=monthly,
                    dead_letter_topic=f"{declarations}.dead-letter")


def publish(bootstrap: str, path: Path, declarations: str, monthly: str, *, rate: float | None = None) -> dict:
    """``transitwatch.streams.produce.produce`` over ``path``; returns the counts and the seconds it took."""
    from transitwatch.streams.produce import produce

    t0 = time.monotonic()
    result = asyncio.run(produce([path], _settings(bootstrap, declarations, monthly), rate=rate))
    seconds = time.monotonic() - t0
    return {"sent": dict(result.sent), "total": result.total, "seconds": seconds}


def input_topics(bootstrap: str, partitions: int) -> tuple[str, str]:
    """A fresh pair of input topics (declarations, monthly statistics)."""
    tag = uuid.uuid4().hex[:8]
    names = (f"bench-in-{tag}.declarations", f"bench-in-{tag}.monthly")
    asyncio.run(create_topics(bootstrap, dict.fromkeys(names, partitions)))
    return names


# -- throughput ---------------------------------------------------------------------------------

def run_baseline(bootstrap: str, topic: str, partitions: int, n: int, workdir: Path, mode: str) -> dict[str, Any]:
    """One bare-agent run (:mod:`benchmarks.service_baseline`) in a subprocess."""
    tag = uuid.uuid4().hex[:8]
    out = workdir / f"baseline-{tag}.json"
    env = {**os.environ, "BENCH_BROKER": bootstrap, "BENCH_TOPIC": topic, "BENCH_APP_ID": f"bench-bare-{tag}",
           "BENCH_PARTITIONS": str(partitions), "BENCH_EXPECT": str(n), "BENCH_OUT": str(out),
           "BENCH_WEB_PORT": str(free_port()), "BENCH_DATADIR": str(workdir / f"bare-{tag}"), "BENCH_MODE": mode}
    log_path = workdir / f"baseline-{tag}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.service_baseline"], env=env, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120 + n / 1000
        while not out.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkError(f"the baseline did not finish; log {log_path}:\n"
                                     f"{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        res = orjson.loads(out.read_bytes())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {"seconds": res["seconds"], "count": res["count"], "per_s": res["count"] / res["seconds"],
            "cpu_seconds": res.get("cpu_seconds", math.nan)}


def _spy(pid: int, path: Path) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("py-spy")
    if exe is None:
        return None
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", "100", "--format", "raw",
                             "--nonblocking", "--output", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_worker(dep: Deployment, n: int, *, broker_pid: int | None = None,
               profile_to: Path | None = None) -> dict[str, Any]:
    """One worker over the ``n`` declarations already on the input topic, timed from its counters."""
    w = dep.worker("throughput").start()
    spy = None
    try:
        samples: list[Progress] = []
        broker_cpu: dict[float, float | None] = {}
        ready_s = None
        deadline = time.monotonic() + 120 + n / 500
        while True:
            w.alive()
            p = w.progress()
            if p is not None:
                if not samples and profile_to is not None:
                    spy = _spy(w.pid(), profile_to)
                samples.append(p)
                broker_cpu[p.t] = cpu_seconds(broker_pid) if broker_pid else None
                if ready_s is None and w.ready():
                    ready_s = time.monotonic() - w.started
                if p.done(n):
                    break
            if time.monotonic() > deadline:
                raise BenchmarkError(f"worker did not process {n} declarations; last {samples[-1:]}; "
                                     f"log {w.log_path}:\n{w.log_tail()}")
            time.sleep(SCRAPE_S)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        res = throughput(samples, n)
        b0, b1 = broker_cpu[res["start"]], broker_cpu[res["end"]]
        res["broker_cpu_seconds"] = b1 - b0 if b0 is not None and b1 is not None else math.nan
        # the worker's own lag gauge (refreshed every 2 s) must agree that nothing is left
        final = w.wait(lambda: (lambda q: q if q is not None and q.lag_zero else None)(w.progress()),
                       "consumer lag 0", timeout=30, interval=0.5)
        res.update(ready_s=ready_s, forwarded=final.forwarded, consumed=final.consumed,
                   series=final.series, scrapes=len(samples))
        return res
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        w.stop()


def core_path(path: str, batch: int = 2000, lateness_days: int = 3) -> dict[str, float]:
    """The detector agent's work alone, in this process, no Faust or Kafka: records already
    validated, in batches of ``batch``, each goods group's :class:`~transitwatch.streams.state.GroupState`
    fed, advanced to the batch's newest day and persisted into a dict, as ``_detect`` does."""
    from transitwatch.detectors.contract import parse_json_line
    from transitwatch.detectors.watch import WatchConfig
    from transitwatch.streams.state import GroupState, event_day

    with open(path, "rb") as f:
        records = [parse_json_line(line) for line in f]
    config, store, groups = WatchConfig.default(), {}, {}
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(records), batch):
        chunk = records[i:i + batch]
        by_group: dict[str, list] = {}
        for rec in chunk:
            by_group.setdefault(rec.hs_code[:6], []).append(rec)
        touched = []
        for group, recs in by_group.items():
            state = groups.get(group)
            if state is None:
                state = groups[group] = GroupState.open(group, config, store, lateness_days=lateness_days)
            state.feed(recs)
            touched.append(state)
        day = max(event_day(r) for r in chunk)
        touched += [s for s in groups.values() if s.advance(day) and s not in touched]
        for state in touched:
            state.drain()
            state.persist()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": seconds, "per_s": len(records) / seconds, "cpu_seconds": cpu, "count": len(records)}


def run_throughput(bootstrap: str, workdir: Path, *, n: int, seed: int, repeat: int, partitions: int,
                   batched: bool, profile: bool, log: Log, broker_pid: int | None = None,
                   variants: list[Path] | None = None) -> dict[str, Any]:
    path = declarations_file(workdir, n, seed)
    declarations, monthly = input_topics(bootstrap, partitions)
    pub = publish(bootstrap, path, declarations, monthly)
    if pub["sent"].get(declarations) != n:
        raise BenchmarkError(f"expected {n} declarations on {declarations}, published {pub['sent']}")
    log(f"throughput: {n:,} declarations published to {declarations} ({partitions} partitions) "
        f"in {pub['seconds']:.1f} s")
    modes = ["message", "batch", "aiokafka"] if batched else ["message"]
    workers = {"worker": ROOT, **{f"variant {i + 1}": v for i, v in enumerate(variants or [])}}
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in [*modes, *workers]}
    for i in range(repeat):
        for mode in modes:
            r = run_baseline(bootstrap, declarations, partitions, n, workdir, mode)
            runs[mode].append(r)
            log(f"  run {i + 1}/{repeat} bare agent ({mode:8s}) {r['per_s']:9,.0f} msg/s  ({r['seconds']:.1f} s, "
                f"CPU {r['cpu_seconds']:.1f} s)")
        for name, root in workers.items():
            dep = Deployment(bootstrap, declarations, monthly, workdir, partitions, root=root)
            r = run_worker(dep, n, broker_pid=broker_pid)
            runs[name].append(r)
            log(f"  run {i + 1}/{repeat} {name:20s} {r['per_s']:9,.0f} decl/s ({r['seconds']:.1f} s, CPU "
                f"{r['cpu_seconds']:.1f} s, broker CPU {r['broker_cpu_seconds']:.1f} s; ingest {r['ingest_per_s']:,.0f}/s; "
                f"ready after {r['ready_s'] or math.nan:.1f} s)")
    if batched:
        from benchmarks.throughput import _in_child

        runs["core"] = [_in_child(core_path, str(path))]
        log(f"  detector path alone (no Faust, no Kafka)  {runs['core'][0]['per_s']:9,.0f} decl/s")
    med = {k: statistics.median(r["per_s"] for r in v) for k, v in runs.items()}
    res: dict[str, Any] = {
        "declarations": n, "seed": seed, "partitions": partitions, "publish": pub, "runs": runs,
        "median_per_s": med,
        "median_ingest_per_s": statistics.median(r["ingest_per_s"] for r in runs["worker"]),
        "ratio": med["worker"] / med["message"],
        "ratios": [w["per_s"] / b["per_s"] for w, b in zip(runs["worker"], runs["message"])],
        "worker_ready_s": statistics.median(r["ready_s"] for r in runs["worker"] if r["ready_s"] is not None),
        "variants": [str(v) for v in variants or []],
    }
    if profile:
        spy_path = workdir / "worker-profile.txt"
        if shutil.which("py-spy") is None:
            log("  --profile: py-spy is not installed (pip install py-spy); no profile")
        else:
            log("  profiling one more worker run with py-spy ...")
            dep = Deployment(bootstrap, declarations, monthly, workdir, partitions)
            r = run_worker(dep, n, broker_pid=broker_pid, profile_to=spy_path)
            with open(spy_path) as f:
                res["profile"] = {**profile_summary(f), "per_s": r["per_s"], "raw": str(spy_path)}
    return res


# -- latency ------------------------------------------------------------------------------------

def run_latency(bootstrap: str, workdir: Path, *, rate: float, hub_series: int, months: int, seed: int,
                partitions: int, log: Log, broker_pid: int | None = None, profile: bool = False,
                root: Path = ROOT) -> dict[str, Any]:
    path = labelled_file(workdir, hub_series, months, seed)
    n = sum(1 for _ in open(path, "rb"))
    declarations, monthly = input_topics(bootstrap, partitions)
    dep = Deployment(bootstrap, declarations, monthly, workdir, partitions, root=root)
    w = dep.worker("latency").start()
    try:
        w.wait(w.ready, "/ready", timeout=120, interval=0.2)
        log(f"latency: publishing {n:,} declarations at {rate:,.0f}/s while the worker (from {root}) runs ...")
        spy = _spy(w.pid(), workdir / f"latency-profile-{dep.app_id}.txt") if profile else None
        cpu0 = (cpu_seconds(w.pid()), cpu_seconds(broker_pid) if broker_pid else None, time.process_time())
        pub = asyncio.run(publish_paced(path, _settings(bootstrap, declarations, monthly), rate))
        cpu1 = (cpu_seconds(w.pid()), cpu_seconds(broker_pid) if broker_pid else None, time.process_time())
        cpu = {k: (b - a) / pub["seconds"] if a is not None and b is not None else math.nan
               for k, a, b in zip(("worker", "broker", "publisher"), cpu0, cpu1)}
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        w.wait(lambda: (lambda q: q is not None and q.done(n))(w.progress()), "all processed",
               timeout=120 + n / 500, interval=0.25)
        # alerts still due (records waiting at the end of the input are applied after 2-5 s idle)
        quiet, last, t_last = 8.0, -1.0, time.monotonic()
        final = None
        while time.monotonic() - t_last < quiet:
            q = w.progress()
            if q is not None:
                final = q
                if q.alerts != last:
                    last, t_last = q.alerts, time.monotonic()
            time.sleep(0.5)
        own = {} if final is None else {
            f"{name}_{label}": histogram_quantile(final.samples, f"transitwatch_{name}_seconds", q)
            for name in ("processing_latency", "batch_duration") for label, q in (("p50", 0.5), ("p99", 0.99))}
    finally:
        w.stop()
    inputs = [InputMessage.of(m.timestamp, m.partition, m.offset, orjson.loads(m.value))
              for m in asyncio.run(read_topic(bootstrap, declarations))]
    alerts = [AlertMessage.of(m.timestamp, orjson.loads(m.value)) for m in asyncio.run(read_topic(bootstrap,
                                                                                                 dep.alerts_topic))]
    attributions = attribute(inputs, alerts)
    summary = latency_summary(attributions)
    first = min(m.ts for m in inputs)
    later = latency_summary([a for a in attributions if a.record is not None and a.record.ts - first >= WARMUP_S])
    prof = None
    if profile and (workdir / f"latency-profile-{dep.app_id}.txt").exists():
        with open(workdir / f"latency-profile-{dep.app_id}.txt") as f:
            prof = {**profile_summary(f), "raw": str(workdir / f"latency-profile-{dep.app_id}.txt")}
    worst = sorted((a for a in attributions if a.latency is not None), key=lambda a: -a.latency)[:5]
    log(f"  {len(alerts)} alert versions; p50 {summary['all']['p50']:.3f} s, p99 {summary['all']['p99']:.3f} s, "
        f"max {summary['all']['max']:.3f} s")
    return {
        "lines": n, "hub_series": hub_series, "months": months, "seed": seed, "rate": rate,
        "achieved_rate": pub["total"] / pub["seconds"], "publish_seconds": pub["seconds"],
        "alerts": len(alerts), "summary": summary, "after_warmup": later["all"], "worker_histograms": own,
        "cpu_share": cpu, "root": str(root),
        "nproc": os.cpu_count(),
        "worst": [{"alert_id": a.alert.alert_id, "period": a.alert.period, "early": a.alert.early,
                   "latency": a.latency, "record_date": a.record.date.isoformat()} for a in worst if a.record],
        "profile": prof,
    }


# -- restart ------------------------------------------------------------------------------------

def _changelog(bootstrap: str, topic: str, log_dir: Path) -> dict[str, Any]:
    ends = asyncio.run(end_offsets(bootstrap, topic))
    messages = asyncio.run(read_topic(bootstrap, topic))
    live: dict[bytes, int] = {}
    for m in messages:
        if m.value is None:
            live.pop(m.key, None)
        else:
            live[m.key] = len(m.key or b"") + len(m.value)
    return {"end_offsets": sum(ends.values()), "partitions": len(ends), "disk_bytes": disk_bytes(log_dir, topic),
            "messages_read": len(messages),
            "read_bytes": sum(len(m.key or b"") + len(m.value or b"") for m in messages),
            "live_keys": len(live), "live_bytes": sum(live.values())}


def _probe(workdir: Path, i: int, month: str) -> tuple[Path, int]:
    """One declaration per goods group, in the month in progress, with ids not seen before."""
    from transitwatch.detectors.watch import WatchConfig

    rows = [{"declaration_id": f"probe{i}-{hs6}", "date": f"{month}-{min(20 + i, 28):02d}", "reporter": "DE",
             "partner": "KZ", "flow": "export", "hs_code": hs6 + "00", "value": 500.0, "currency": "USD"}
            for hs6 in sorted(WatchConfig.default().hs6)]
    return _write_lines(workdir / f"probe-{i}.jsonl", rows), len(rows)


def _restart_once(dep: Deployment, name: str, probe: int, series: int) -> dict[str, Any]:
    """Start a worker on existing state; time /ready, the first records processed, all probes
    processed and the series gauge back at ``series``."""
    w = dep.worker(name).start()
    marks: dict[str, float] = {}
    last: Progress | None = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        w.alive()
        now = time.monotonic() - w.started
        if "ready" not in marks and w.ready():
            marks["ready"] = now
        p = w.progress()
        if p is not None:
            last = p
            now = p.t - w.started
            marks.setdefault("metrics", now)
            if p.processed > 0:
                marks.setdefault("first_records", now)
            if p.processed >= probe:
                marks.setdefault("probe_done", now)
            if p.series is not None and p.series >= series:
                marks.setdefault("series_restored", now)
        if {"ready", "probe_done", "series_restored"} <= set(marks):
            break
        time.sleep(0.05)
    else:
        raise BenchmarkError(f"restart {name}: only {sorted(marks)} within 300 s; log {w.log_path}:\n{w.log_tail()}")
    return {"worker": w, **marks, "series": last.series if last else None,
            "restore_gauge_s": last.restore_seconds if last else None}


def run_restart(bootstrap: str, workdir: Path, log_dir: Path, *, series: int, open_share: float, seed: int,
                partitions: int, repeat: int, log: Log, root: Path = ROOT) -> dict[str, Any]:
    path, n = state_file(workdir, series, open_share, seed)
    declarations, monthly = input_topics(bootstrap, partitions)
    pub = publish(bootstrap, path, declarations, monthly)
    log(f"restart: {n:,} declarations for {series:,} series published; building state (worker from {root}) ...")
    dep = Deployment(bootstrap, declarations, monthly, workdir, partitions, root=root)
    build = run_worker_keep(dep, n)
    w: WorkerProcess = build.pop("worker")
    series_gauge = w.wait(lambda: (lambda q: q.series if q is not None and q.series else None)(w.progress()),
                          "series gauge", timeout=30, interval=0.5)
    log(f"  state built: {series_gauge:,.0f} series in {build['seconds']:.1f} s ({build['per_s']:,.0f} decl/s)")
    runs: list[dict[str, Any]] = []
    changelog = None
    open_month = "2024-02"
    for i, sig in enumerate([signal.SIGTERM] * repeat + [signal.SIGKILL] * repeat):
        stop_s = w.stop(sig)
        if changelog is None:
            changelog = _changelog(bootstrap, dep.changelog_topic, log_dir)
            log(f"  changelog: {changelog['end_offsets']:,} messages, {changelog['disk_bytes'] / 2**20:.1f} MiB "
                f"on disk, {changelog['live_keys']:,} live keys ({changelog['live_bytes'] / 2**20:.1f} MiB)")
        probe_path, probe = _probe(workdir, i, open_month)
        publish(bootstrap, probe_path, declarations, monthly)
        r = _restart_once(dep, f"restart{i}", probe, int(series_gauge))
        w = r.pop("worker")
        r.update(signal=signal.Signals(sig).name, previous_stop_s=stop_s)
        runs.append(r)
        log(f"  after {r['signal']}: ready {r['ready']:.1f} s, first records {r.get('first_records', math.nan):.1f} s, "
            f"probe done {r['probe_done']:.1f} s, series back {r['series_restored']:.1f} s")
    w.stop()
    return {"series": series, "series_gauge": series_gauge, "lines": n, "open_share": open_share,
            "publish": pub, "build": build, "changelog": changelog, "runs": runs, "root": str(root)}


def run_worker_keep(dep: Deployment, n: int) -> dict[str, Any]:
    """Like :func:`run_worker`, but the worker keeps running (returned under ``"worker"``)."""
    w = dep.worker("build").start()
    samples: list[Progress] = []
    deadline = time.monotonic() + 120 + n / 300
    while True:
        w.alive()
        p = w.progress()
        if p is not None:
            samples.append(p)
            if p.done(n):
                break
        if time.monotonic() > deadline:
            w.stop()
            raise BenchmarkError(f"the state was not built; last {samples[-1:]}; log {w.log_path}:\n{w.log_tail()}")
        time.sleep(SCRAPE_S)
    w.wait(lambda: (lambda q: q is not None and q.lag_zero)(w.progress()), "consumer lag 0", timeout=30,
           interval=0.5)
    return {**throughput(samples, n), "worker": w}


# -- the run ------------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    from benchmarks.throughput import machine as base

    import aiokafka
    import faust

    m = base()
    try:
        with open("/proc/loadavg") as f:
            m["loadavg"] = f.read().split()[:3]
    except OSError:
        m["loadavg"] = None
    try:
        m["java"] = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    except (OSError, IndexError):
        m["java"] = "unknown"
    m.update(faust=faust.__version__, aiokafka=aiokafka.__version__)
    return m


def run(args: argparse.Namespace, workdir: Path, log: Log) -> dict[str, Any]:
    from tests.integration.broker import KAFKA_VERSION, KafkaBroker

    steps = [s for s in STEPS if s in args.steps]
    res: dict[str, Any] = {"command": command(args), "date": dt.date.today().isoformat(), "machine": machine(),
                           "kafka": KAFKA_VERSION, "steps": steps}
    broker = KafkaBroker(workdir / "kafka")
    t0 = time.monotonic()
    broker.start()
    log(f"Kafka {KAFKA_VERSION} broker on {broker.bootstrap} ({time.monotonic() - t0:.1f} s to start)")
    try:
        if "throughput" in steps:
            res["throughput"] = run_throughput(
                broker.bootstrap, workdir, n=args.declarations, seed=args.seed, repeat=args.repeat,
                partitions=args.partitions, batched=args.batched_baseline, profile=args.profile, log=log,
                broker_pid=broker.process.pid if broker.process else None, variants=args.variant)
        if "latency" in steps:
            roots = {"worker": ROOT, **{f"variant {i + 1}": v for i, v in enumerate(args.variant)}}
            res["latency_runs"] = {name: [] for name in roots}
            for i in range(args.latency_repeat):
                for name, root in roots.items():
                    r = run_latency(
                        broker.bootstrap, workdir, rate=args.latency_rate, hub_series=args.latency_hub_series,
                        months=args.latency_months, seed=args.seed, partitions=args.partitions, log=log,
                        broker_pid=broker.process.pid if broker.process else None, root=root,
                        profile=args.profile and i == 0 and name == "worker" and shutil.which("py-spy") is not None)
                    if i == 0 and name == "worker":
                        res["latency"] = r
                    res["latency_runs"][name].append(
                        {"all": r["summary"]["all"], "after_warmup": r["after_warmup"], "root": r["root"],
                         "achieved_rate": r["achieved_rate"], "cpu_share": r["cpu_share"]})
        if "restart" in steps:
            res["restart"] = run_restart(
                broker.bootstrap, workdir, workdir / "kafka" / "data", series=args.series,
                open_share=args.open_share, seed=args.seed, partitions=args.partitions,
                repeat=args.restart_repeat, log=log)
            res["restart_variants"] = [run_restart(
                broker.bootstrap, workdir, workdir / "kafka" / "data", series=args.series,
                open_share=args.open_share, seed=args.seed, partitions=args.partitions,
                repeat=args.restart_repeat, log=log, root=v) for v in args.variant]
    finally:
        broker.stop()
    res["seconds"] = time.monotonic() - t0
    res["machine"]["loadavg_after"] = machine().get("loadavg")
    return res


def command(args: argparse.Namespace) -> str:
    parts = ["python -m benchmarks.service"]
    if args.quick:
        parts.append("--quick")
    defaults = parse_args(["--quick"] if args.quick else [])
    for name in ("declarations", "seed", "repeat", "partitions", "latency_rate", "latency_hub_series",
                 "latency_months", "latency_repeat", "series", "open_share", "restart_repeat"):
        if getattr(args, name) != getattr(defaults, name):
            parts.append(f"--{name.replace('_', '-')} {getattr(args, name)}")
    if args.steps != defaults.steps:
        parts.append(f"--steps {','.join(args.steps)}")
    if args.batched_baseline:
        parts.append("--more-baselines")
    if args.profile:
        parts.append("--profile")
    parts += [f"--variant {v}" for v in args.variant]
    return " ".join(parts)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.service",
        description="Throughput, alert latency and restart of `transitwatch worker` against a real Kafka broker "
                    "(started by the benchmark on loopback).",
    )
    p.add_argument("--quick", action="store_true",
                   help="small sizes for a check in 2-3 minutes (20,000 declarations, 1 run, 20,000 series)")
    p.add_argument("--steps", type=lambda s: [x.strip() for x in s.split(",") if x.strip()], default=list(STEPS),
                   help=f"comma-separated, from {','.join(STEPS)} (default: all)")
    p.add_argument("--declarations", type=int, default=None,
                   help="declarations for the throughput runs (default 200,000)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--repeat", type=int, default=None,
                   help="runs of the baseline and of the worker, alternating (median reported; default 3)")
    p.add_argument("--partitions", type=int, default=8, help="partitions of every topic (default 8, the worker's)")
    p.add_argument("--more-baselines", dest="batched_baseline", action="store_true",
                   help="also run a bare agent that takes batches (stream.take_events) as the worker does, a "
                        "plain aiokafka consumer without Faust, and the detector agent's work alone")
    p.add_argument("--profile", action="store_true", help="one more worker run under py-spy (needs py-spy)")
    p.add_argument("--variant", type=Path, action="append", default=[], metavar="DIR",
                   help="also run the worker from another checkout DIR (a change to measure), alternating with "
                        "this one's; repeatable")
    p.add_argument("--latency-rate", type=float, default=2000.0, help="declarations a second (default 2,000)")
    p.add_argument("--latency-hub-series", type=int, default=None,
                   help="size of the labelled scenario published for the latency step (default 200)")
    p.add_argument("--latency-months", type=int, default=36, help="months of the labelled scenario (default 36)")
    p.add_argument("--latency-repeat", type=int, default=None, help="latency runs (default 3; --quick 1)")
    p.add_argument("--series", type=int, default=None,
                   help="series in state for the restart step (default 100,000)")
    p.add_argument("--open-share", type=float, default=0.5,
                   help="share of the series with a record in the month in progress (default 0.5)")
    p.add_argument("--restart-repeat", type=int, default=1, help="restarts after SIGTERM, then after SIGKILL")
    p.add_argument("--workdir", type=Path, default=None,
                   help="keep inputs, logs and the broker's data here (default: a temporary directory)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the raw results as JSON")
    p.add_argument("--write-doc", type=Path, default=None, metavar="FILE",
                   help="rewrite the results section of FILE (e.g. docs/performance.md)")
    p.add_argument("--from-json", type=Path, default=None, metavar="FILE",
                   help="measure nothing: render the results saved by an earlier --json FILE")
    return p


FULL = {"declarations": 200_000, "repeat": 3, "latency_hub_series": 200, "latency_repeat": 3, "series": 100_000}
QUICK = {"declarations": 20_000, "repeat": 1, "latency_hub_series": 60, "latency_repeat": 1, "series": 20_000}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options, with the sizes of ``--quick`` or of a full run where not given."""
    args = parser().parse_args(argv)
    for name, default in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    unknown = set(args.steps) - set(STEPS)
    if unknown or not args.steps:
        parser().error(f"--steps must be among {','.join(STEPS)}")
    if min(args.declarations, args.repeat, args.partitions, args.series, args.restart_repeat, args.latency_repeat) < 1:
        parser().error("--declarations, --repeat, --partitions, --series, --latency-repeat and --restart-repeat "
                       "must be at least 1")
    if not 0 < args.latency_rate or not 0 <= args.open_share <= 1:
        parser().error("--latency-rate must be > 0 and --open-share within 0-1")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.from_json is not None:
        res = orjson.loads(args.from_json.read_bytes())
    else:
        with tempfile.TemporaryDirectory(prefix="transitwatch-service-bench-") as tmp:
            workdir = args.workdir or Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            if (workdir / "kafka").exists():
                shutil.rmtree(workdir / "kafka")  # a fresh broker every run
            res = run(args, workdir, log)
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2, default=str))
    md = render(res)
    print(md)
    if args.write_doc is not None:
        write_doc(args.write_doc, md)
        log(f"results written to {args.write_doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
