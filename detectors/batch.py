"""The vectorized batch path: a whole table of records at once.

:func:`monthly_cells` aggregates records into series-month totals with pandas
(de-duplicating declarations, applying revisions of monthly statistics,
converting currencies, keeping only what the configuration watches), and
:func:`detect` runs the same month-closing step as the incremental
:class:`~transitwatch.detectors.engine.Engine`, one vectorized call per month. Both paths
give the same month-end alerts; a property-based test holds them to it. The
batch path has no in-month (early) checks and no exporter names; it counts new
consignees as the Engine does (``new_parties``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from transitwatch.detectors.alerts import Alert
from transitwatch.detectors.base import PARTY_MEMORY_MONTHS, party_key
from transitwatch.detectors.contract import Declaration, Record
from transitwatch.detectors.engine import Engine
from transitwatch.detectors.table import SeriesKey
from transitwatch.detectors.watch import WatchConfig

KEY = ["reporter", "partner", "flow", "hs6"]


def records_frame(records: Iterable[Record]) -> pd.DataFrame:
    """Records in input order as a DataFrame (one row each)."""
    rows = []
    for rec in records:
        is_decl = type(rec) is Declaration
        rows.append((
            rec.declaration_id if is_decl else None, rec.month, rec.reporter, rec.partner, rec.flow,
            rec.hs_code, rec.value, rec.currency, is_decl, (rec.consignee or None) if is_decl else None,
        ))
    return pd.DataFrame(
        rows, columns=["declaration_id", "month", "reporter", "partner", "flow", "hs_code", "value", "currency",
                       "declaration", "consignee"]
    )


def monthly_cells(frame: pd.DataFrame, config: WatchConfig) -> pd.DataFrame:
    """Series-month totals: value (base currency), count, largest declaration and new
    consignees (``new_parties``: consignees the series had not seen in
    ``PARTY_MEMORY_MONTHS`` months; ``NaN`` for monthly statistics).

    Examples
    --------
    >>> from transitwatch.detectors.contract import parse_mapping
    >>> recs = [parse_mapping({"declaration_id": i, "date": "2022-03-0%d" % d, "reporter": "DE",
    ...     "partner": "KG", "hs_code": "85423190", "value": v, "currency": "USD"})
    ...     for i, d, v in (("a", 1, 10.0), ("b", 2, 30.0), ("a", 3, 99.0))]
    >>> monthly_cells(records_frame(recs), WatchConfig.default())[["hs6", "value", "count", "max_item"]]
          hs6  value  count  max_item
    0  854231   40.0    2.0      30.0
    """
    df = frame
    decl = df["declaration"].to_numpy(bool)
    dup = pd.Series(False, index=df.index)
    dup[decl] = df.loc[decl, "declaration_id"].duplicated(keep="first")
    df = df[~dup.to_numpy()]
    df = df.assign(hs6=df["hs_code"].str[:6])
    lanes = pd.MultiIndex.from_frame(df[["reporter", "partner"]])
    watched = [lane for lane in lanes.unique() if config.role(*lane) is not None]
    keep = lanes.isin(watched) & df["hs6"].isin(config.hs6).to_numpy() & df["flow"].isin(config.flows).to_numpy()
    df = df[keep]
    rates = df["currency"].map(config.rates)
    df = df[rates.notna()].assign(value=df["value"] / rates[rates.notna()])
    decl = df["declaration"].to_numpy(bool)
    stats = df[~decl].drop_duplicates(["month", *KEY[:3], "hs_code"], keep="last")
    stats_cells = stats.groupby(["month", *KEY], sort=False)["value"].sum().reset_index()
    stats_cells["count"] = np.nan
    stats_cells["max_item"] = np.nan
    stats_cells["new_parties"] = np.nan
    stats_cells["new_top"] = np.nan
    d = df[decl]
    decl_cells = d.groupby(["month", *KEY], sort=False)["value"].agg(["sum", "size", "max"]).reset_index()
    decl_cells.columns = ["month", *KEY, "value", "count", "max_item"]
    decl_cells["count"] = decl_cells["count"].astype(float)
    new = _new_parties(d)
    decl_cells = decl_cells.merge(new, on=["month", *KEY], how="left", sort=False)
    decl_cells["new_parties"] = decl_cells["new_parties"].fillna(0.0)
    decl_cells["new_top"] = decl_cells["new_top"].fillna(0.0)
    cells = pd.concat([decl_cells, stats_cells], ignore_index=True)
    return cells[[*KEY, "month", "value", "count", "max_item", "new_parties", "new_top"]].sort_values(
        ["month", *KEY], kind="stable", ignore_index=True)


def _new_parties(decl: pd.DataFrame) -> pd.DataFrame:
    """Per series-month, the consignees the series had not seen in ``PARTY_MEMORY_MONTHS`` months,
    and the month's value to the largest of them."""
    named = decl[decl["consignee"].notna() & (decl["consignee"] != "")] if "consignee" in decl else decl.iloc[:0]
    named = named.assign(consignee=named["consignee"].map(party_key))
    named = named[named["consignee"] != ""]
    pairs = (named.groupby(["month", *KEY, "consignee"], sort=False)["value"].sum().reset_index()
             .sort_values([*KEY, "consignee", "month"]))
    before = pairs.groupby([*KEY, "consignee"], sort=False)["month"].shift(1)
    new = pairs[(before.isna() | (pairs["month"] - before > PARTY_MEMORY_MONTHS)).to_numpy()]
    out = new.groupby(["month", *KEY], sort=False)["value"].agg(["size", "max"]).reset_index()
    out.columns = ["month", *KEY, "new_parties", "new_top"]
    out["new_parties"] = out["new_parties"].astype(float)
    return out


def detect(cells: pd.DataFrame, config: WatchConfig | None = None) -> list[Alert]:
    """Month-end alerts for series-month totals from :func:`monthly_cells`.

    Series join the table in the month of their first cell, as in the Engine, so
    a series' history starts when its goods group (hs6) started, or at the
    configuration's ``watch.history_start`` when it sets one."""
    engine = Engine(config)
    if cells.empty:
        return []
    first, last = int(cells["month"].min()), int(cells["month"].max())
    engine.table = engine.new_table(first)
    series = cells.drop_duplicates(KEY)  # cells are sorted by month: series in the order they start
    counted = cells.groupby(KEY, sort=False)["count"].apply(lambda c: bool(c.notna().any()))
    keys = [SeriesKey(*k) for k in series[KEY].itertuples(index=False)]
    index = {key: r for r, key in enumerate(keys)}
    joins = np.searchsorted(series["month"].to_numpy(np.int64), np.arange(first, last + 2))
    rows = np.array([index[SeriesKey(*k)] for k in cells[KEY].itertuples(index=False)], dtype=np.int64)
    col = cells["month"].to_numpy(np.int64) - first
    shape = (len(keys), last - first + 1)
    value = np.zeros(shape)
    value[rows, col] = cells["value"].to_numpy(float)
    is_counted = np.array([counted.loc[tuple(key)] for key in keys], dtype=bool)

    def counted_only(column: str) -> np.ndarray:
        """A column known for counted series only: 0 in their months without a cell."""
        out = np.full(shape, np.nan)
        out[rows, col] = cells[column].to_numpy(float)
        out[is_counted[:, None] & np.isnan(out)] = 0.0
        return out

    count = counted_only("count")
    max_item = np.full(shape, np.nan)
    max_item[rows, col] = cells["max_item"].to_numpy(float)
    party = counted_only("new_parties") if "new_parties" in cells else np.full(shape, np.nan)
    new_top = counted_only("new_top") if "new_top" in cells else np.full(shape, np.nan)
    for t in range(shape[1]):
        for r in range(joins[t], joins[t + 1]):
            engine._row(keys[r], bool(is_counted[r]))
        n = int(joins[t + 1])
        engine.close_month(first + t, value[:n, t].copy(), count[:n, t].copy(), max_item[:n, t].copy(),
                           party[:n, t].copy(), new_top[:n, t].copy())
    return engine.drain()
