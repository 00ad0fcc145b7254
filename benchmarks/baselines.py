"""Baselines the detection benchmark runs beside transitwatch.

- :func:`spreadsheet_rule`: the analyst's rule, a month at least 3x the same
  month a year before and above a materiality floor.
- :func:`half_space_scores`: river's ``HalfSpaceTrees`` behind a
  ``MinMaxScaler``, streamed over simple per-series features in time order,
  learning everything it sees (a generic online anomaly detector).
- :func:`isolation_scores`: the scores of transitwatch's IsolationForest on its
  engineered features for every eligible lane-month, to place that baseline on
  a recall / false-alarm curve (the alerting rows come from real runs with
  ``[isolation] in_alerting_path = true``).

Every function takes the series-month cells of :func:`transitwatch.detectors.batch.monthly_cells`
and returns ``(key, month)`` alerts or a score frame with columns
``reporter, partner, flow, hs6, month, score``.
"""

from __future__ import annotations

from collections.abc import Collection
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import pandas as pd

from transitwatch.detectors.batch import KEY, detect
from transitwatch.detectors.policy import AlertPolicy
from transitwatch.detectors.watch import WatchConfig

Key = tuple[str, str, str, str]
SCORE_COLUMNS = [*KEY, "month", "score"]


def series_matrix(cells: pd.DataFrame, keys: list[Key], first: int, last: int) -> np.ndarray:
    """Values of ``keys`` over months ``first..last`` as a dense matrix; no cell means no trade (0).

    Examples
    --------
    >>> cells = pd.DataFrame({"reporter": ["DE"], "partner": ["KG"], "flow": ["export"], "hs6": ["854231"],
    ...                       "month": [5], "value": [7.0]})
    >>> series_matrix(cells, [("DE", "KG", "export", "854231")], 4, 6).tolist()
    [[0.0, 7.0, 0.0]]
    """
    index = {k: i for i, k in enumerate(keys)}
    out = np.zeros((len(keys), last - first + 1))
    if cells.empty:
        return out
    rows = np.array([index.get(k, -1) for k in cells[KEY].itertuples(index=False, name=None)], dtype=np.int64)
    months = cells["month"].to_numpy(np.int64) - first
    ok = (rows >= 0) & (months >= 0) & (months <= last - first)
    np.add.at(out, (rows[ok], months[ok]), cells["value"].to_numpy(float)[ok])
    return out


def hub_keys(cells: pd.DataFrame, hubs: Collection[str]) -> list[Key]:
    """The distinct series of ``cells`` into ``hubs``, in first-seen order."""
    keys = cells.drop_duplicates(KEY)[KEY]
    return [k for k in keys.itertuples(index=False, name=None) if k[1] in hubs]


def spreadsheet_rule(cells: pd.DataFrame, *, hubs: Collection[str], ratio: float = 3.0,
                     floor: float = 10_000.0) -> set[tuple[Key, int]]:
    """The analyst's rule: alert a hub lane-month whose value is at least ``ratio``
    times the same month a year before and exceeds it by at least ``floor``
    (a year-before month with no trade counts as 0). Months without a year
    before in the data never alert.

    Examples
    --------
    >>> k = ("DE", "KG", "export", "854231")
    >>> cells = pd.DataFrame([(*k, m, v) for m, v in ((0, 5000.0), (12, 20000.0), (13, 20000.0), (14, 9000.0))],
    ...                      columns=[*KEY, "month", "value"])
    >>> sorted(m for _, m in spreadsheet_rule(cells, hubs={"KG"}))
    [12, 13]
    """
    if cells.empty:
        return set()
    keys = hub_keys(cells, hubs)
    first, last = int(cells["month"].min()), int(cells["month"].max())
    v = series_matrix(cells, keys, first, last)
    now, before = v[:, 12:], v[:, :-12]
    hit = (now - before >= floor) & ((before == 0) | (now >= ratio * before))
    rows, cols = np.nonzero(hit)
    return {(keys[r], first + 12 + c) for r, c in zip(rows.tolist(), cols.tolist())}


def half_space_features(v: np.ndarray) -> np.ndarray:
    """Per series-month features ``(n, months, 3)``: log1p value, log ratio to the
    trailing 12-month mean, log ratio to the same month a year before (0 where the
    past is not in the data)."""
    lv = np.log1p(v)
    csum = np.concatenate([np.zeros((v.shape[0], 1)), np.cumsum(v, axis=1)], axis=1)
    t = np.arange(v.shape[1])
    lo = np.maximum(t - 12, 0)
    n = np.maximum(t - lo, 1)
    trailing = (csum[:, t] - csum[:, lo]) / n
    to_trailing = np.where(t > 0, lv - np.log1p(trailing), 0.0)
    to_year = np.zeros_like(lv)
    to_year[:, 12:] = lv[:, 12:] - lv[:, :-12]
    return np.stack([lv, to_trailing, to_year], axis=2)


def half_space_scores(cells: pd.DataFrame, *, hubs: Collection[str], seed: int = 0,
                      max_series: int | None = None, n_trees: int = 25, height: int = 8,
                      window_size: int = 250) -> pd.DataFrame:
    """River ``HalfSpaceTrees`` (``MinMaxScaler`` in front) scored then learned on
    every hub lane-month in time order; higher is more anomalous. With
    ``max_series`` a seeded random subset of the hub series is streamed (river is
    pure Python)."""
    from river import anomaly, compose, preprocessing

    if cells.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    keys = hub_keys(cells, hubs)
    rng = np.random.default_rng(seed)
    if max_series is not None and len(keys) > max_series:
        keys = [keys[i] for i in np.sort(rng.choice(len(keys), max_series, replace=False))]
    first, last = int(cells["month"].min()), int(cells["month"].max())
    x = half_space_features(series_matrix(cells, keys, first, last))
    model = compose.Pipeline(
        preprocessing.MinMaxScaler(),
        anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=seed),
    )
    scores = np.zeros(x.shape[:2])
    names = ("log_value", "log_to_trailing", "log_to_year")
    for t in range(x.shape[1]):
        for i in rng.permutation(x.shape[0]).tolist():
            row = dict(zip(names, x[i, t].tolist()))
            scores[i, t] = model.score_one(row)
            model.learn_one(row)
    return _frame(keys, first, scores)


@contextmanager
def _capture_verdicts(sink: list) -> Iterator[None]:
    """Record every verdict :meth:`AlertPolicy.decide` returns (benchmark-only hook)."""
    original = AlertPolicy.decide

    def decide(self, window, lanes=None, *, cross=True, **kwargs):
        verdict = original(self, window, lanes, cross=cross, **kwargs)
        if cross:
            sink.append(verdict)
        return verdict

    AlertPolicy.decide = decide
    try:
        yield
    finally:
        AlertPolicy.decide = original


def isolation_scores(cells: pd.DataFrame, config: WatchConfig) -> pd.DataFrame:
    """IsolationForest scores of every hub lane-month where the isolation detector
    may fire (eligible for the surge test, excess at least its ``min_excess``),
    from one batch run of ``config`` (which must put isolation in the alerting path)."""
    if not config.params["isolation"].in_alerting_path:
        raise ValueError("isolation_scores needs [isolation] in_alerting_path = true")
    if cells.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    verdicts: list = []
    with _capture_verdicts(verdicts):
        detect(cells, config)
    keys = list(cells.drop_duplicates(KEY)[KEY].itertuples(index=False, name=None))
    first = int(cells["month"].min())
    floor = config.params["isolation"].min_excess
    scores = np.full((len(keys), len(verdicts)), np.nan)
    for t, v in enumerate(verdicts):
        if v.isolation is None:
            continue
        # Series join the batch table in the month of their first cell, in the order of
        # ``keys``: a month's verdict covers the series joined so far, the first rows.
        n = v.isolation.shape[0]
        if n > len(keys):
            raise RuntimeError("the batch path's row order changed: series rows no longer follow the cells")
        ok = v.surge.eligible & (np.nan_to_num(v.surge.excess) >= floor)
        scores[:n, t] = np.where(ok, v.isolation, np.nan)
    hub = np.array([k[1] in config.hubs for k in keys])
    return _frame([k for k, h in zip(keys, hub) if h], first, scores[hub])


def _frame(keys: list[Key], first: int, scores: np.ndarray) -> pd.DataFrame:
    rows, cols = np.nonzero(~np.isnan(scores))
    frame = pd.DataFrame([keys[r] for r in rows.tolist()], columns=KEY) if rows.size else pd.DataFrame(columns=KEY)
    frame["month"] = first + cols
    frame["score"] = scores[rows, cols]
    return frame


def alerts_above(scores: pd.DataFrame, threshold: float) -> set[tuple[Key, int]]:
    """``(key, month)`` of every score at or above ``threshold``."""
    hit = scores[scores["score"] >= threshold]
    return set(zip(hit[KEY].itertuples(index=False, name=None), hit["month"].astype(int).tolist()))
