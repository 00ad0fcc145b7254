"""Detection quality: transitwatch and baselines side by side on a labelled scenario.

One command generates the labelled scenario (:mod:`benchmarks.scenarios.labelled`),
aggregates each input kind once (declarations, monthly statistics), runs every
method on the same cells and scores them with :mod:`benchmarks.scoring`::

    python -m benchmarks.detection --seed 1 --hub-series 3000 \
        [--eurostat PATH] [--write-doc docs/detection.md] [--quick]

Methods: transitwatch combined, each of its detectors alone, the IsolationForest on
its engineered features (at two thresholds), combined + IsolationForest, the
analyst's spreadsheet rule (x3 on the same month a year before, above the
materiality floor) and river's HalfSpaceTrees. ``--eurostat`` adds the replay of
the real Eurostat Comext file (:mod:`benchmarks.real_eurostat`, with ``watch.history_start``
at the file's first month).
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import math
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks import baselines, scoring
from benchmarks.batch import KEY, detect, monthly_cells, records_frame
from benchmarks.scoring import Key, Score, Truth
from transitwatch.detectors.contract import parse_mapping
from transitwatch.detectors.watch import WatchConfig

START = "2019-01"
MONTHS = 60
SANCTIONS = "2022-03"
QUICK_HUB_SERIES = 400
FA_POINTS = (2.0, 5.0)  # false alarms per 1,000 series-months at which score baselines are read
ALONE = ("seasonal_surge", "ramp", "novelty", "new_consignees", "diversion")
DECLARATIONS_ONLY = ("new_consignees",)  # monthly statistics name no consignees: no row of its own there
HST_MAX_SERIES = 3000  # river is pure Python: above this many hub series, stream a sample


def isolation_toml(threshold: float, *, combined: bool = False) -> str:
    text = f"[isolation]\nin_alerting_path = true\nthreshold = {threshold:.4f}\n"
    return text if combined else text + '[policy]\ndetectors = ["isolation"]\n'


@dataclass
class Row:
    """One method on one input kind."""

    method: str
    input: str
    score: Score
    note: str = ""
    alerts: set[tuple[Key, int]] = field(default_factory=set, repr=False)
    seconds: float = 0.0


@dataclass
class Run:
    """Everything one benchmark run produced, for the table, the doc and the charts."""

    args: dict[str, Any]
    truth: Truth
    first: int
    last: int
    rows: list[Row]
    cells: dict[str, pd.DataFrame]
    curves: dict[str, list[tuple[float, float]]]
    fa_by_detector: dict[str, collections.Counter]
    timings: dict[str, float]
    real: dict[str, Any] | None = None
    fa_cases: dict[str, collections.Counter] = field(default_factory=dict)  # false_alarm_cases of combined


def generate_scenario(seed: int, hub_series: int):
    from benchmarks.scenarios import labelled

    return labelled.generate(seed=seed, hub_series=hub_series, start=START, months=MONTHS, sanctions=SANCTIONS)


def cells_of(records: list[dict]) -> pd.DataFrame:
    """Parse each record once and aggregate to series-month cells."""
    parsed = [parse_mapping(r) for r in records]
    return monthly_cells(records_frame(parsed), WatchConfig.default())


def alert_cells(alerts) -> set[tuple[Key, int]]:
    """The lane-months alerted: records in which a detector fired (a case's months in which none did
    are its updates, scored as cases in ``benchmarks.cases``, not as alerts here)."""
    return {((a.reporter, a.partner, a.flow, a.hs6), scoring.month_index(a.period)) for a in alerts if a.detectors}


NEW_CASE = ("opened", "reopened")  # case events that start a case (a false one, outside surge windows)


def false_alarm_cases(alerts, false_cells: Collection[tuple[Key, int]]) -> collections.Counter:
    """How the false-alarm lane-months of a run divide: ``new case`` where an alert of the
    lane-month opened or reopened a case, ``in a case`` where the lane-month is a further month
    of a case already open in which a detector fired again (cases keep alerting every hot month
    by design, so one false case can make several false-alarm months).

    Examples
    --------
    >>> from types import SimpleNamespace as A
    >>> key = ("DE", "KG", "export", "854231")
    >>> alerts = [A(reporter="DE", partner="KG", flow="export", hs6="854231", period="2022-04",
    ...             detectors=("ramp",), case_event="opened"),
    ...           A(reporter="DE", partner="KG", flow="export", hs6="854231", period="2022-05",
    ...             detectors=("ramp",), case_event="updated"),
    ...           A(reporter="DE", partner="KG", flow="export", hs6="854231", period="2022-06",
    ...             detectors=(), case_event="updated")]
    >>> false = {(key, scoring.month_index(p)) for p in ("2022-04", "2022-05")}
    >>> sorted(false_alarm_cases(alerts, false).items())
    [('in a case', 1), ('new case', 1)]
    """
    opened = {((a.reporter, a.partner, a.flow, a.hs6), scoring.month_index(a.period))
              for a in alerts if a.detectors and a.case_event in NEW_CASE}
    return collections.Counter("new case" if cell in opened else "in a case" for cell in false_cells)


def _scored(frame: pd.DataFrame) -> list[tuple[Key, int, float]]:
    return list(zip(frame[KEY].itertuples(index=False, name=None), frame["month"].astype(int).tolist(),
                    frame["score"].astype(float).tolist()))


def run_input(kind: str, cells: pd.DataFrame, truth: Truth, first: int, last: int, *, seed: int,
              curves: dict, fa_by_detector: dict, timings: dict, fa_cases: dict | None = None) -> list[Row]:
    """Every method on one input kind's cells."""
    rows: list[Row] = []
    fa_cases = {} if fa_cases is None else fa_cases

    def add(method: str, alerts: set, started: float, note: str = "") -> Score:
        s = scoring.score(truth, alerts, first=first, last=last)
        rows.append(Row(method, kind, s, note, alerts, time.perf_counter() - started))
        return s

    def transitwatch(method: str, toml: str, note: str = ""):
        t0 = time.perf_counter()
        alerts = detect(cells, WatchConfig.from_toml(toml))
        add(method, alert_cells(alerts), t0, note)
        return alerts

    combined = transitwatch("transitwatch combined", "")
    fa = rows[-1].score.false_alarm_cells
    by_detector: collections.Counter = collections.Counter()
    for a in combined:
        if (((a.reporter, a.partner, a.flow, a.hs6)), scoring.month_index(a.period)) in fa:
            by_detector.update(a.detectors)
    fa_by_detector[kind] = by_detector
    fa_cases[kind] = false_alarm_cases(combined, fa)
    for name in ALONE:
        if kind == "declarations" or name not in DECLARATIONS_ONLY:
            transitwatch(f"{name} alone", f'[policy]\ndetectors = ["{name}"]\n')

    # IsolationForest on the engineered features: thresholds read off its score curve
    # (with the truth: the baseline's best operating point at a comparable false-alarm rate)
    t0 = time.perf_counter()
    iso = _scored(baselines.isolation_scores(cells, WatchConfig.from_toml(isolation_toml(0.99))))
    curves[f"IsolationForest (features), {kind}"] = scoring.curve(truth, iso, first=first, last=last)
    timings[f"isolation scores, {kind}"] = time.perf_counter() - t0
    thresholds = []
    for target in FA_POINTS:
        cut, _ = scoring.operating_point(truth, iso, fa_per_1000=target, first=first, last=last)
        thresholds.append(min(1.0, math.ceil(cut * 1e4) / 1e4) if math.isfinite(cut) else 1.0)
        transitwatch(f"IsolationForest (features) t={thresholds[-1]:.4f}", isolation_toml(thresholds[-1]),
                     f"threshold read at {target:g} FA/1000")
    transitwatch(f"combined + IsolationForest t={thresholds[0]:.4f}", isolation_toml(thresholds[0], combined=True))

    # the analyst's spreadsheet rule
    t0 = time.perf_counter()
    hubs = WatchConfig.default().hubs
    floor = WatchConfig.default().params["surge"].min_excess
    add("spreadsheet rule (x3 y/y)", baselines.spreadsheet_rule(cells, hubs=hubs, floor=floor), t0,
        f"floor {floor:,.0f}")
    curves[f"spreadsheet rule, {kind}"] = [
        (s.fa_per_1000, s.recall)
        for s in (scoring.score(truth, baselines.spreadsheet_rule(cells, hubs=hubs, ratio=r, floor=floor),
                                first=first, last=last) for r in (2.0, 3.0, 4.0, 6.0, 10.0))
    ]

    # river HalfSpaceTrees on generic per-series features
    t0 = time.perf_counter()
    n_hub = len(baselines.hub_keys(cells, hubs))
    hst_frame = baselines.half_space_scores(cells, hubs=hubs, seed=seed, max_series=HST_MAX_SERIES)
    hst = _scored(hst_frame)
    timings[f"HalfSpaceTrees stream, {kind}"] = time.perf_counter() - t0
    sample = hst_frame.drop_duplicates(KEY)
    sub = truth if len(sample) >= n_hub else _restrict(truth, set(sample[KEY].itertuples(index=False, name=None)))
    note = "" if sub is truth else f"sample of {len(sample)} of {n_hub} series"
    curves[f"HalfSpaceTrees, {kind}"] = scoring.curve(sub, hst, first=first, last=last)
    for target in FA_POINTS:
        t1 = time.perf_counter()
        cut, s = scoring.operating_point(sub, hst, fa_per_1000=target, first=first, last=last)
        rows.append(Row(f"HalfSpaceTrees at {target:g} FA/1000", kind, s,
                        "; ".join(x for x in (note, f"threshold {cut:.4f}") if x),
                        baselines.alerts_above(hst_frame, cut), time.perf_counter() - t1))
    return rows


ORACLES = (
    ("oracle: true null model known", "bound, not a method", {}),
    ("oracle without consignees", "bound, not a method", {"party_weight": 0.0}),
    ("oracle, counts only", "bound, not a method", {"value_weight": 0.0, "party_weight": 0.0}),
    ("learned null: counts + new consignees", "the oracle's test, null learned", {"learned": True, "party_weight": 1.0}),
    ("learned null: counts only", "the oracle's test, null learned", {"learned": True}),
)


def oracle_rows(null, truth: Truth, first: int, last: int) -> list[Row]:
    """The oracle bound (:mod:`benchmarks.oracle`) at 2 false alarms per 1,000: not a method
    anyone can run, the best a per-month test could do knowing each lane's true null model;
    then with less evidence, and with the null learned from each lane's past (what learning
    costs, apart from any detector's design). Thresholds are read with the truth."""
    from benchmarks import oracle

    rows = []
    for name, note, kw in ORACLES:
        t0 = time.perf_counter()
        kw = dict(kw)
        scores = oracle.learned_scores(null, **kw) if kw.pop("learned", False) else oracle.month_scores(null, **kw)
        cut, s = scoring.operating_point(truth, oracle.scored(null, first, scores),
                                         fa_per_1000=FA_POINTS[0], first=first, last=last)
        rows.append(Row(name, "declarations", s, f"{note}; threshold read at {FA_POINTS[0]:g} FA/1000", set(),
                        time.perf_counter() - t0))
    return rows


def _restrict(truth: Truth, keys: set[Key]) -> Truth:
    return Truth({k: d for k, d in truth.series.items() if k in keys},
                 tuple(s for s in truth.surges if s.key in keys), tuple(d for d in truth.decoys if d.key in keys))


def benchmark(*, seed: int, hub_series: int, eurostat: str | None = None, log=print) -> Run:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    scn = generate_scenario(seed, hub_series)
    timings["generate"] = time.perf_counter() - t0
    truth = Truth.from_rows(scn.truth)
    first = scoring.month_index(START)
    last = first + MONTHS - 1
    log(f"scenario: {len(truth.series)} hub series, {len(truth.surges)} surged, {len(truth.decoys)} decoys, "
        f"{len(scn.declarations):,} declarations, {len(scn.monthly):,} monthly statistics "
        f"({timings['generate']:.0f} s)")
    cells, rows = {}, []
    curves: dict[str, list] = {}
    fa_by_detector: dict[str, collections.Counter] = {}
    fa_cases: dict[str, collections.Counter] = {}
    for kind, records in (("declarations", scn.declarations), ("monthly", scn.monthly)):
        t0 = time.perf_counter()
        cells[kind] = cells_of(records)
        timings[f"parse + aggregate, {kind}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows += run_input(kind, cells[kind], truth, first, last, seed=seed, curves=curves,
                          fa_by_detector=fa_by_detector, timings=timings, fa_cases=fa_cases)
        timings[f"methods, {kind}"] = time.perf_counter() - t0
        log(f"{kind}: {len(cells[kind]):,} cells, parsed in {timings[f'parse + aggregate, {kind}']:.0f} s, "
            f"methods in {timings[f'methods, {kind}']:.0f} s")
    if scn.null is not None:
        t0 = time.perf_counter()
        at = len([r for r in rows if r.input == "declarations"])
        rows[at:at] = oracle_rows(scn.null, truth, first, last)
        timings["oracle"] = time.perf_counter() - t0
    del scn
    real = None
    if eurostat:
        from benchmarks import real_data

        t0 = time.perf_counter()
        real = real_data.evaluate(eurostat)
        timings["real data"] = time.perf_counter() - t0
    return Run({"seed": seed, "hub_series": hub_series, "eurostat": eurostat}, truth, first, last, rows, cells,
               curves, fa_by_detector, timings, real, fa_cases)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hub-series", type=int, default=3000)
    parser.add_argument("--quick", action="store_true", help=f"hub_series {QUICK_HUB_SERIES}, for a fast look")
    parser.add_argument("--eurostat", metavar="PATH", help="replay the real Eurostat Comext CHPL file too")
    parser.add_argument("--write-doc", metavar="PATH", help="rewrite the results section of this Markdown file")
    args = parser.parse_args(argv)
    hub_series = QUICK_HUB_SERIES if args.quick else args.hub_series
    from benchmarks import detection_report as report

    started = time.perf_counter()
    run = benchmark(seed=args.seed, hub_series=hub_series, eurostat=args.eurostat)
    run.timings["total"] = time.perf_counter() - started
    command = "python -m benchmarks.detection " + " ".join(argv if argv is not None else sys.argv[1:])
    report.print_run(run)
    if args.write_doc:
        report.write_doc(run, Path(args.write_doc), command=command.strip(), today=dt.date.today())
        print(f"wrote {args.write_doc} and its charts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
