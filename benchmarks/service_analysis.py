"""Pure helpers of the service benchmark (``benchmarks/service.py``): no Kafka, no processes.

- :func:`parse_metrics` and :class:`Progress`: what a ``/metrics`` scrape says about a worker.
- :func:`throughput`: declarations a second, from timed scrapes of a worker's own counters.
- :func:`attribute` and :func:`latency_summary`: alert latency, each alert against the input
  record that completed its evidence.
- :func:`state_lines`: declarations that give a worker a chosen number of series.
- :func:`profile_summary`: where the time goes, from py-spy's collapsed stacks.

Examples
--------
>>> p = Progress.of(2.0, parse_metrics('transitwatch_records_consumed_total{kind="declarations"} 5.0'))
>>> p.consumed, p.processed
(5.0, 0.0)
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

# -- scrapes ------------------------------------------------------------------------------------

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Samples:
    """A Prometheus text exposition as ``{(sample name, sorted labels): value}``.

    Examples
    --------
    >>> s = parse_metrics('a_total{kind="x"} 3\\na_total{kind="y"} 4\\nb 1')
    >>> value(s, "a_total", kind="x"), total(s, "a_total"), total(s, "missing")
    (3.0, 7.0, 0.0)
    """
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, ``None`` if the scrape does not have it."""
    return samples.get((name, tuple(sorted(labels.items()))))


def total(samples: Samples, name: str) -> float:
    """The sum of a metric over all its label values (0 if absent)."""
    return float(sum(v for (n, _), v in samples.items() if n == name))


def histogram_quantile(samples: Samples, name: str, q: float) -> float:
    """The ``q`` quantile of a Prometheus histogram, interpolated within its bucket as
    PromQL's ``histogram_quantile`` does (NaN when it is empty; the largest finite bound
    when the quantile falls in ``+Inf``).

    >>> s = parse_metrics('h_bucket{le="0.1"} 50\\nh_bucket{le="1.0"} 100\\nh_bucket{le="+Inf"} 100\\nh_count 100')
    >>> histogram_quantile(s, "h", 0.5), round(histogram_quantile(s, "h", 0.9), 3)
    (0.1, 0.82)
    """
    buckets = sorted((float(dict(labels)["le"]), v) for (n, labels), v in samples.items() if n == f"{name}_bucket")
    if not buckets or buckets[-1][1] == 0:
        return math.nan
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return math.nan


@dataclass(frozen=True)
class Progress:
    """A worker's counters at one scrape (``t``: the harness's monotonic clock, seconds).

    ``processed`` counts records the detector agent has finished (their batch's alerts
    published and state written: one observation each of the processing-latency histogram);
    ``forwarded`` is what it has to finish: consumed minus rejected minus not watched."""

    t: float
    consumed: float
    processed: float
    forwarded: float
    batches: float
    lag: dict[str, float] = field(default_factory=dict)
    series: float | None = None
    alerts: float = 0.0
    restore_seconds: float | None = None
    cpu: float | None = None  # CPU seconds the worker process has used (all threads), if known
    samples: Samples = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, t: float, s: Samples) -> Progress:
        consumed = total(s, "transitwatch_records_consumed_total")
        dropped = total(s, "transitwatch_records_rejected_total") + total(s, "transitwatch_records_not_watched_total")
        lag = {dict(labels).get("kind", ""): v for (n, labels), v in s.items()
               if n == "transitwatch_consumer_lag_messages"}
        return cls(t=t, consumed=consumed,
                   processed=value(s, "transitwatch_processing_latency_seconds_count") or 0.0,
                   forwarded=consumed - dropped,
                   batches=value(s, "transitwatch_batch_duration_seconds_count") or 0.0,
                   lag=lag, series=value(s, "transitwatch_series_in_state"),
                   alerts=total(s, "transitwatch_alerts_published_total"),
                   restore_seconds=value(s, "transitwatch_state_restore_seconds"), samples=s)

    def done(self, n: int) -> bool:
        """All ``n`` input messages consumed and every forwarded record processed."""
        return self.consumed >= n and self.processed >= self.forwarded

    @property
    def lag_zero(self) -> bool:
        """The worker's own lag gauge (refreshed every 2 s) says nothing is left, for every kind."""
        return bool(self.lag) and all(v == 0 for v in self.lag.values())


def _crossing(samples: Sequence[Progress], level: float, counter: str) -> float | None:
    """When ``counter`` reached ``level``, interpolated linearly between two scrapes."""
    for a, b in zip(samples, samples[1:]):
        x, y = getattr(a, counter), getattr(b, counter)
        if x < level <= y:
            return a.t + (b.t - a.t) * (level - x) / (y - x)
    return None


def throughput(samples: Sequence[Progress], n: int) -> dict[str, float]:
    """Declarations a second over one run, from scrapes in time order.

    The run starts at the last scrape that saw nothing consumed (so the first batch's time
    is counted, never left out) and ends at the first scrape that saw all ``n`` consumed and
    every forwarded record processed: each end is off by at most one scrape interval, on the
    side of a lower rate. ``ingest_per_s`` is the rate at which the ingest consumed,
    between 10 % and 90 % of the messages (the detector's counter moves in steps too large
    for such a split: it counts whole batches).

    Examples
    --------
    >>> runs = [Progress(t, c, p, c, 0) for t, c, p in [(0.0, 0, 0), (1.0, 40, 0), (2.0, 80, 40), (3.0, 100, 100)]]
    >>> r = throughput(runs, 100)
    >>> r["seconds"], round(r["per_s"], 1), round(r["ingest_per_s"], 1)
    (3.0, 33.3, 35.6)
    """
    started = [p for p in samples if p.consumed == 0]
    if not started or started[0] is not samples[0]:
        raise ValueError("the first scrape must come before anything is consumed")
    start = started[-1].t
    end = next((p.t for p in samples if p.done(n)), None)
    if end is None:
        raise ValueError(f"no scrape saw all {n} messages processed")
    t10, t90 = _crossing(samples, 0.1 * n, "consumed"), _crossing(samples, 0.9 * n, "consumed")
    ingest = 0.8 * n / (t90 - t10) if t10 is not None and t90 is not None and t90 > t10 else math.nan
    first = started[-1]
    last = next(p for p in samples if p.done(n))
    cpu = last.cpu - first.cpu if last.cpu is not None and first.cpu is not None else math.nan
    return {"start": start, "end": end, "seconds": end - start, "per_s": n / (end - start), "ingest_per_s": ingest,
            "cpu_seconds": cpu}


# -- alert latency ------------------------------------------------------------------------------

def month_index(date: dt.date) -> int:
    """``year * 12 + month - 1``, as the engine counts months."""
    return date.year * 12 + date.month - 1


def period_index(period: str) -> int:
    """The month index of ``YYYY-MM``.

    >>> period_index("2022-03") == month_index(dt.date(2022, 3, 1))
    True
    """
    return int(period[:4]) * 12 + int(period[5:7]) - 1


@dataclass(frozen=True)
class InputMessage:
    """One declaration as it sits on the input topic."""

    ts: float  # Kafka timestamp, seconds
    partition: int
    offset: int
    hs6: str
    date: dt.date

    @classmethod
    def of(cls, ts_ms: int, partition: int, offset: int, line: dict[str, Any]) -> InputMessage:
        hs = str(line["hs_code"]).replace(".", "").replace(" ", "")
        return cls(ts_ms / 1000.0, partition, offset, hs[:6], dt.date.fromisoformat(str(line["date"])[:10]))


@dataclass(frozen=True)
class AlertMessage:
    """One alert version as it sits on the alerts topic."""

    ts: float  # Kafka timestamp, seconds
    alert_id: str
    hs6: str
    period: str
    early: bool
    as_of: dt.date

    @classmethod
    def of(cls, ts_ms: int, alert: dict[str, Any]) -> AlertMessage:
        return cls(ts_ms / 1000.0, alert["alert_id"], alert["hs6"], alert["period"], bool(alert["early"]),
                   dt.date.fromisoformat(alert["as_of"]))


@dataclass(frozen=True)
class Attribution:
    """An alert and the input record that completed its evidence (``None``: none found)."""

    alert: AlertMessage
    record: InputMessage | None
    rule: str  # "early: same group, day after as_of" | "month end: first record of a later month"
    own_group: InputMessage | None = None  # month end: the group's own first record of a later month

    @property
    def latency(self) -> float | None:
        return None if self.record is None else self.alert.ts - self.record.ts


EARLY_RULE = "early: first record of the goods group dated after as_of"
MONTH_END_RULE = "month end: first record of any group in a later month"


def attribute(inputs: Iterable[InputMessage], alerts: Iterable[AlertMessage]) -> list[Attribution]:
    """Each alert version with the input record that completed its evidence.

    - An early alert (``early``) is raised when its goods group's first record dated after
      ``as_of`` is applied (``as_of`` is that record's date minus one day): the completing
      record is the first published record of the same HS6, dated after ``as_of`` and within
      the alert's month.
    - A month-end alert is raised when the month closes, which the first record of a later
      month can cause at the earliest: for the group itself (its own record) or for the
      service's watermark (records of every input partition). The completing record is taken
      as the first published record of *any* group in a later month. The latency is then an
      upper bound, never negative; the group's own first record of a later month is kept in
      ``own_group`` for comparison (with it, a sparse group's alert would seem to precede its
      evidence, since the watermark closed the month first).

    "First published" is the smallest Kafka timestamp (then partition, offset).

    Examples
    --------
    >>> d = dt.date
    >>> ins = [InputMessage(10.0, 0, 0, "854231", d(2024, 1, 30)), InputMessage(11.0, 1, 0, "880730", d(2024, 2, 1)),
    ...        InputMessage(12.0, 0, 1, "854231", d(2024, 2, 8)), InputMessage(13.0, 0, 2, "854231", d(2024, 2, 20))]
    >>> early = AlertMessage(12.4, "tw-1", "854231", "2024-02", True, d(2024, 2, 7))
    >>> final = AlertMessage(11.3, "tw-2", "854231", "2024-01", False, d(2024, 1, 31))
    >>> [(a.record.offset, round(a.latency, 1)) for a in attribute(ins, [early, final])]
    [(1, 0.4), (0, 0.3)]
    """
    ordered = sorted(inputs, key=lambda m: (m.ts, m.partition, m.offset))
    by_group: dict[str, list[InputMessage]] = {}
    first_of_month: dict[int, InputMessage] = {}
    for m in ordered:
        by_group.setdefault(m.hs6, []).append(m)
        first_of_month.setdefault(month_index(m.date), m)
    # the first published record of any month later than m, for every month m seen
    months = sorted(first_of_month)
    later: dict[int, InputMessage] = {}
    best: InputMessage | None = None
    for month in reversed(months):
        later[month] = best  # type: ignore[assignment]
        m = first_of_month[month]
        if best is None or (m.ts, m.partition, m.offset) < (best.ts, best.partition, best.offset):
            best = m
    out = []
    for alert in alerts:
        period = period_index(alert.period)
        group = by_group.get(alert.hs6, [])
        if alert.early:
            record = next((m for m in group if m.date > alert.as_of and month_index(m.date) == period), None)
            out.append(Attribution(alert, record, EARLY_RULE))
            continue
        own = next((m for m in group if month_index(m.date) > period), None)
        record = _first_after(later, first_of_month, period)
        out.append(Attribution(alert, record, MONTH_END_RULE, own_group=own))
    return out


def _first_after(later: dict[int, InputMessage], first_of_month: dict[int, InputMessage],
                 period: int) -> InputMessage | None:
    """The first published record of a month after ``period`` (months with no record included)."""
    if period in later:
        return later[period]
    candidates = [m for month, m in first_of_month.items() if month > period]
    return min(candidates, key=lambda m: (m.ts, m.partition, m.offset), default=None)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """Count, p50, p90, p99 (numpy's linear interpolation) and max; NaN when empty.

    >>> percentiles([0.1, 0.2, 0.3, 0.4])["p50"]
    0.25
    """
    if not values:
        return {"count": 0, "p50": math.nan, "p90": math.nan, "p99": math.nan, "max": math.nan}
    a = np.asarray(values, dtype=float)
    p50, p90, p99 = np.percentile(a, [50, 90, 99]).tolist()
    return {"count": int(a.size), "p50": p50, "p90": p90, "p99": p99, "max": float(a.max())}


def latency_summary(attributions: Sequence[Attribution]) -> dict[str, Any]:
    """Percentiles over all alert versions and per kind, plus what could not be attributed.

    ``own_group_negative`` counts month-end alerts published *before* their group's own first
    record of a later month: the month was closed by the watermark, not by the group."""
    found = [a for a in attributions if a.latency is not None]
    early = [a.latency for a in found if a.alert.early]
    final = [a.latency for a in found if not a.alert.early]
    own = [a.alert.ts - a.own_group.ts for a in attributions if not a.alert.early and a.own_group is not None]
    return {
        "all": percentiles([a.latency for a in found]),  # type: ignore[misc]
        "early": percentiles(early),  # type: ignore[arg-type]
        "month_end": percentiles(final),  # type: ignore[arg-type]
        "unattributed": len(attributions) - len(found),
        "negative": sum(1 for a in found if a.latency < 0),  # type: ignore[operator]
        "own_group_negative": sum(1 for x in own if x < 0),
        "own_group_count": len(own),
    }


# -- state for the restart measurement ----------------------------------------------------------

def lanes(reporters: Sequence[str], partners: Sequence[str], flows: Sequence[str], hs6: Sequence[str],
          series: int) -> list[tuple[str, str, str, str]]:
    """``series`` distinct (reporter, partner, flow, hs6) lanes spread evenly over the HS6 codes
    (each goods group gets ``series / len(hs6)``, give or take one).

    >>> ls = lanes(["DE", "FR"], ["KZ", "RU"], ["export"], ["854231", "880730"], 6)
    >>> len(set(ls)), sorted(Counter(h for *_, h in ls).values())
    (6, [3, 3])
    """
    per_group = len(reporters) * len(partners) * len(flows)
    if series > per_group * len(hs6):
        raise ValueError(f"{series} series need more than {len(reporters)} reporters x {len(partners)} partners "
                         f"x {len(flows)} flows x {len(hs6)} HS6 codes")
    out = []
    for i in range(series):
        g, k = i % len(hs6), i // len(hs6)
        r, rest = divmod(k, len(partners) * len(flows))
        p, f = divmod(rest, len(flows))
        out.append((reporters[r], partners[p], flows[f], hs6[g]))
    return out


def state_lines(lane_list: Sequence[tuple[str, str, str, str]], *, first_month: str = "2024-01",
                open_share: float = 0.5, seed: int = 0) -> list[dict[str, Any]]:
    """Declarations that build state for every lane: one in ``first_month`` for each lane
    (a month the worker then closes and snapshots), and one in the first half of the next
    month for a share ``open_share`` of them (the month in progress, kept in the state log).
    Values are small (no alert), in USD; lines come in date order.

    >>> rows = state_lines([("DE", "KZ", "export", "854231"), ("FR", "RU", "export", "880730")], open_share=1.0)
    >>> [r["date"][:7] for r in rows], len({r["declaration_id"] for r in rows})
    (['2024-01', '2024-01', '2024-02', '2024-02'], 4)
    """
    rng = np.random.default_rng(seed)
    year, month = int(first_month[:4]), int(first_month[5:7])
    nxt = (year + month // 12, month % 12 + 1)
    n = len(lane_list)
    days1 = rng.integers(1, 29, n)
    opened = rng.random(n) < open_share
    days2 = rng.integers(1, 15, n)
    values = np.round(rng.uniform(200.0, 2000.0, (2, n)), 2)
    rows = []
    for i, (reporter, partner, flow, hs6) in enumerate(lane_list):
        base = {"reporter": reporter, "partner": partner, "flow": flow, "hs_code": hs6 + "00", "currency": "USD"}
        rows.append({"declaration_id": f"st{i:07d}a", "date": f"{year:04d}-{month:02d}-{days1[i]:02d}",
                     **base, "value": float(values[0, i])})
        if opened[i]:
            rows.append({"declaration_id": f"st{i:07d}b", "date": f"{nxt[0]:04d}-{nxt[1]:02d}-{days2[i]:02d}",
                         **base, "value": float(values[1, i])})
    rows.sort(key=lambda r: r["date"])
    return rows


# -- profile ------------------------------------------------------------------------------------

# Where the worker's time goes: (label, what a frame's text must contain: one string or several),
# checked against every frame of a stack (inclusive time). Frames look like "func (path/file.py:line)".
PROFILE_PARTS: tuple[tuple[str, str | tuple[str, ...]], ...] = (
    ("ingest (validate, route, forward, commit)", "Ingest.run (streams/ingest.py"),
    ("  input contract: parse_json_line", "parse_json_line (detectors/contract.py"),
    ("  record to dict for the bundle: _Line.to_dict", "to_dict (detectors/contract.py"),
    ("detect agent (all of a batch)", "_detect (streams/service.py"),
    ("  bundle decode: parse_mapping", "parse_mapping (detectors/contract.py"),
    ("  GroupState.feed and .advance (reorder buffer, engine)",
     ("GroupState.feed (streams/state.py", "GroupState.advance (streams/state.py")),
    ("    Engine.add (with the early checks it runs)", "Engine.add (detectors/engine.py"),
    ("      early checks (Engine._check_group)", "Engine._check_group (detectors/engine.py"),
    ("    month closes (Engine.close_month)", "Engine.close_month (detectors/engine.py"),
    ("  GroupState.persist (state to the table)", "GroupState.persist (streams/state.py"),
    ("  publish and persist (alerts, state)", "_publish_and_persist (streams/service.py"),
    ("Faust/aiokafka consumer thread", "WorkerThread.run (mode/threads.py"),
    ("Faust stream iteration (Stream._c_aiter)", "Stream._c_aiter (faust/streams.py"),
    ("timers and gauges", "_update_gauges (streams/service.py"),
    ("waiting in epoll (idle)", "select (selectors.py"),
)


def profile_summary(collapsed: Iterable[str], top: int = 15) -> dict[str, Any]:
    """Shares of the samples of a py-spy ``--format raw`` (collapsed stacks) recording.

    Returns the total sample count, the shares of :data:`PROFILE_PARTS` (inclusive: a sample
    counts for a part when any of its frames matches) and the ``top`` frames by own samples
    (the innermost frame).

    Examples
    --------
    >>> lines = ["main (a.py:1);_detect (streams/service.py:9);Engine.add (detectors/engine.py:3) 3",
    ...          "main (a.py:1);select (selectors.py:468) 1"]
    >>> p = profile_summary(lines)
    >>> p["samples"], p["parts"]["detect agent (all of a batch)"], p["top"][0]
    (4, 0.75, ('Engine.add (detectors/engine.py:3)', 0.75))
    """
    own: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    samples = 0
    for line in collapsed:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        own[frames[-1].strip()] += n
        for label, needles in PROFILE_PARTS:
            if any(needle in f for needle in ((needles,) if isinstance(needles, str) else needles) for f in frames):
                parts[label] += n
    share = (lambda k: k / samples) if samples else (lambda k: 0.0)
    return {"samples": samples, "parts": {label: share(parts[label]) for label, _ in PROFILE_PARTS},
            "top": [(f, share(k)) for f, k in own.most_common(top)]}
