"""The streamed columnar replay (``window="stream"``) against the one that holds everything
(``window="all"``, itself held equal to the Engine in ``test_columnar.py``), and what it keeps."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transitwatch.detectors.columnar import DEDUP_MONTHS, LATENESS_DAYS, ColumnarReplay
from transitwatch.detectors.contract import parse_mapping
from transitwatch.detectors.frame import Block, month_end_ordinal
from transitwatch.detectors.watch import WatchConfig
from transitwatch.detectors.window import IdHorizon, PartyMemory, month_of_day

CONFIG = WatchConfig.from_toml(
    "[early]\ncheck_days = [5, 12, 20]\n[novelty]\nmin_value = 2000.0\n"
    "[surge]\nmin_excess = 1000.0\n[ramp]\nmin_excess = 1000.0\n"
)
START = dt.date(2019, 1, 1).toordinal()
LANES = [(r, p, h) for r in ("DE", "PL") for p in ("KG", "AM", "RU") for h in ("85423190", "85176200", "90138000")]
LANES.append(("DE", "US", "85423190"))  # not watched


def _records(seed: int, months: int = 44, shuffle_days: int = LATENESS_DAYS):
    """Quiet lanes for years, then bursts (several lanes, to consignees old and new), re-sent
    declarations (the same id up to 45 days later), monthly statistics with revisions, lanes
    not watched; in event order shuffled within ``shuffle_days``."""
    rng = np.random.default_rng(seed)
    rows, days = [], []
    end = dt.date.fromordinal(START)
    for m in range(months):
        year, month = 2019 + m // 12, m % 12 + 1
        for li, (reporter, partner, hs) in enumerate(LANES):
            burst = m >= months - 8 and rng.random() < 0.3
            for k in range(int(rng.poisson(7 if burst else 1.2))):
                day = dt.date(year, month, int(rng.integers(1, 29)))
                cons = f"C{int(rng.integers(0, 40 if burst else 5))}" if rng.random() < 0.9 else None
                rows.append({"declaration_id": f"{m}-{li}-{k}", "date": day.isoformat(), "reporter": reporter,
                             "partner": partner, "hs_code": hs, "value": float(rng.lognormal(7.5, 0.5)) * (6 if burst else 1),
                             "currency": "USD", "exporter": f"E{int(rng.integers(0, 3))}",
                             **({"consignee": cons} if cons else {})})
                days.append(day.toordinal())
                end = max(end, day)
            if li % 4 == 0 and rng.random() < 0.5:
                for _ in range(1 + int(rng.random() < 0.3)):  # a second line is a revision
                    rows.append({"period": f"{year}-{month:02d}", "reporter": reporter, "partner": partner,
                                 "hs_code": hs[:6] + "11", "value": float(rng.lognormal(7, 0.3)), "currency": "USD"})
                    days.append(month_end_ordinal(year * 12 + month - 1))
    for i in rng.choice(len(rows), size=len(rows) // 40, replace=False).tolist():  # re-sent, up to 45 days on
        if "declaration_id" in rows[i]:
            later = min(days[i] + int(rng.integers(0, 46)), end.toordinal())
            rows.append(dict(rows[i], date=dt.date.fromordinal(later).isoformat()))
            days.append(later)
    jitter = rng.integers(0, shuffle_days + 1, len(rows)) if shuffle_days else np.zeros(len(rows), np.int64)
    order = np.lexsort((rng.random(len(rows)), np.array(days) + jitter))
    return [parse_mapping(rows[i]) for i in order.tolist()]


def _run(records, window, *, blocks=7, final_month="closed", to_date=False, **kw):
    run = ColumnarReplay(CONFIG, window=window, **kw)
    step = max(1, len(records) // blocks)
    for a in range(0, len(records), step):
        part = records[a:a + step]
        run.feed(Block.from_records(part), source=0, lines=np.arange(a + 1, a + 1 + len(part)))
    out = run.run(final_month=final_month, to_date=to_date, today=dt.date(2030, 1, 1))
    return run, out, [a.to_dict() for a in out.engine.drain()]


@given(seed=st.integers(0, 2**32 - 1), blocks=st.integers(1, 40), final=st.sampled_from(["closed", "open", "auto"]),
       to_date=st.booleans())
@settings(max_examples=12, deadline=None)
def test_streamed_equals_held_whole_on_input_shuffled_within_the_window(seed, blocks, final, to_date):
    records = _records(seed)
    _, whole, expected = _run(records, "all", blocks=blocks, final_month=final, to_date=to_date)
    run, streamed, got = _run(records, "stream", blocks=blocks, final_month=final, to_date=to_date)
    assert streamed.engine.counts == whole.engine.counts
    assert got == expected
    assert (streamed.last_month_closed, streamed.final_month) == (whole.last_month_closed, whole.final_month)
    assert streamed.engine._parties == whole.engine._parties
    assert run.behind == 0 and streamed.order == ""


def test_the_random_input_has_what_the_equality_needs():
    records = _records(3)
    run, out, alerts = _run(records, "stream", blocks=30)
    counts = out.engine.counts
    assert alerts and any(a["early"] for a in alerts) and any(a["evidence"].get("new_consignees") for a in alerts)
    assert counts["duplicate declarations ignored"] and counts["revisions applied"] and counts["not watched: partner"]
    assert run.peak_buffered < len(records) / 10, "a streamed run holds a window, not the input"


def test_buffered_records_never_exceed_the_window():
    records = _records(5, months=30)
    blocks = 60
    run, _, _ = _run(records, "stream", blocks=blocks)
    day = np.array([r.date.toordinal() if hasattr(r, "date") else 0 for r in records])
    month = np.array([r.month for r in records])
    step = max(1, len(records) // blocks)
    # after each block: what is held is the records of months the input has not moved past
    bound = 0
    latest = np.maximum.accumulate(np.where(day > 0, day, 0))
    for b in range(step, len(records) + step, step):
        seen = slice(0, min(b, len(records)))
        ready = month_of_day(latest[seen.stop - 1] - LATENESS_DAYS)
        bound = max(bound, int(np.count_nonzero(month[seen] >= ready - 1)) + step)
    assert run.peak_buffered <= bound
    assert len(run._horizon) <= sum(isinstance(getattr(r, "declaration_id", None), str) and r.month >= month.max() - DEDUP_MONTHS
                                    for r in records)
    assert len(run._horizon.buckets) <= DEDUP_MONTHS + 2


def test_records_later_than_the_window_are_late_counted_and_said():
    records = _records(7)
    decl = [i for i, r in enumerate(records) if hasattr(r, "date") and r.month == records[-1].month - 6 and r.consignee]
    old_stat = next(i for i, r in enumerate(records) if not hasattr(r, "date") and r.month < records[-1].month - 3)
    moved = [records[i] for i in (*decl[:3], old_stat)]
    rest = [r for i, r in enumerate(records) if i not in set(decl[:3]) | {old_stat}]
    run, out, _ = _run(rest + moved, "stream", blocks=20)
    counts = out.engine.counts
    assert counts["late records folded into history"] == 3
    assert counts["late records not applied (month closed)"] == 1
    _, whole, _ = _run(rest + moved, "all", blocks=20)
    assert counts["records used"] == whole.engine.counts["records used"] - 4
    assert "4 records came after their month had run" in out.order and "--window all" in out.order
    assert run.behind >= 4


def test_auto_holds_input_out_of_order_whole_and_streams_input_in_order():
    records = _records(9)
    _, _, expected = _run(records, "all")
    sixth = len(records) // 6
    backwards = records[sixth:2 * sixth] + records[:sixth] + records[2 * sixth:]
    run, out, got = _run(backwards, "auto", hold=len(records) // 3)
    assert run._mode == "all" and "held whole and sorted" in out.order
    assert got == _run(backwards, "all")[2]
    run, out, got = _run(records, "auto", hold=len(records) // 5)
    assert run._mode == "stream" and out.order == "" and got == expected
    run, out, got = _run(backwards, "auto")  # below the hold: held whole, nothing to say
    assert run._mode == "all" and out.order == ""


def test_id_horizon_is_exact_and_bounded():
    seen = IdHorizon(months=2)
    ids = np.array([f"id{i}" for i in range(1000)], dtype=object)
    assert not seen.duplicates(ids, np.full(1000, 5)).any()
    again = np.array(["id3", "id3x", "id999", "new", "new"], dtype=object)
    assert seen.duplicates(again, np.full(5, 6)).tolist() == [True, False, True, False, True]
    seen.expire(closed=6)  # keeps months 5 and 6
    assert seen.duplicates(np.array(["id3"], dtype=object), np.array([7])).tolist() == [True]
    seen.expire(closed=7)  # month 5 goes
    assert seen.duplicates(np.array(["id4", "new"], dtype=object), np.array([8, 8])).tolist() == [False, True]
    assert sorted(seen.buckets) == [6, 8]  # month 7's only id was a re-sent one


def test_party_memory_keeps_the_latest_month_and_prunes():
    memory = PartyMemory()
    ids = memory.ids(["a", "b", ""])
    assert ids[2] == -1
    a, b = int(ids[0]), int(ids[1])
    memory.merge(np.array([1, 1, 2]), np.array([a, a, b]), np.array([3, 9, 4]))
    memory.merge(np.array([1]), np.array([a]), np.array([7]))  # an older month does not win
    assert memory.last(np.array([1, 2, 2]), np.array([a, b, a])).tolist()[:2] == [9, 4]
    assert memory.last(np.array([2]), np.array([a]))[0] < -(1 << 40)  # never seen
    memory.prune(5)
    assert memory.to_dict() == {1: {"a": 9}}


@pytest.mark.parametrize("window", ["stream", "auto"])
def test_no_records_and_only_unwatched_records(window):
    run = ColumnarReplay(CONFIG, window=window)
    assert run.run().records == 0
    rows = [parse_mapping({"declaration_id": f"x{i}", "date": f"2021-0{1 + i % 5}-03", "reporter": "DE",
                           "partner": "US", "hs_code": "85423190", "value": 10.0, "currency": "USD"}) for i in range(50)]
    _, out, alerts = _run(rows, window)
    assert alerts == [] and out.engine.counts["not watched: partner"] == 50
