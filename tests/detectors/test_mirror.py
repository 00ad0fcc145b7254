"""The mirror test (detectors/mirror.py): a hub's reported imports against the exporter's exports."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.batch import detect, monthly_cells, records_frame
from transitwatch.detectors.base import HISTORY_MONTHS
from transitwatch.detectors.columnar import ColumnarReplay
from transitwatch.detectors.contract import parse_mapping
from transitwatch.detectors.engine import Engine
from transitwatch.detectors.errors import ConfigError, InvalidParameterError
from transitwatch.detectors.frame import Block
from transitwatch.detectors.mirror import MirrorDetector, MirrorParams
from transitwatch.detectors.watch import WatchConfig

H = HISTORY_MONTHS
PAIR, SIDE = np.array([0, 0]), np.array([1, -1])
NO_FLOORS = MirrorParams(min_exports=0.0, min_gap=0.0)


def pair_history(rng: np.random.Generator, *, level: float, usual: float, noise: float, spread: float = 0.05):
    exports = level * np.exp(rng.normal(0.0, spread, H + 1))
    imports = exports * 1.05 * usual * np.exp(rng.normal(0.0, noise, H + 1))
    return exports, imports


def score(params: MirrorParams, exports: np.ndarray, imports: np.ndarray, protected: np.ndarray | None = None,
          month: int | None = None):
    values = np.stack([exports[:-1], imports[:-1]])
    value = np.array([exports[-1], imports[-1]])
    prot = np.zeros((2, H), bool) if protected is None else protected
    return MirrorDetector(params).score_many(pair=PAIR, side=SIDE, values=values, value=value, protected=prot,
                                             month=month)


# --- parameters and configuration ---------------------------------------------------------------

@pytest.mark.parametrize("bad", [{"cif_fob": 0.1}, {"max_lag": 3}, {"period": "week"}, {"fall_ratio": 1.5},
                                 {"min_history_months": 2}, {"history_months": 40}, {"min_exports": -1.0},
                                 {"enabled": "yes"}, {"align": "any"}, {"persist": 3}])
def test_bad_parameters_fail_at_start_up(bad):
    with pytest.raises(InvalidParameterError):
        MirrorParams(**bad)


def test_the_toml_section_sets_the_parameters_and_rejects_unknown_keys():
    cfg = WatchConfig.from_toml('[mirror]\nperiod = "quarter"\ncif_fob = 1.08\nmax_lag = 0')
    p = cfg.params["mirror"]
    assert (p.period, p.cif_fob, p.max_lag, p.width) == ("quarter", 1.08, 0, 3)
    assert cfg.policy().mirror.params == p
    with pytest.raises(ConfigError, match="unknown keys"):
        WatchConfig.from_toml("[mirror]\nratio = 2")
    with pytest.raises(ConfigError, match="period"):
        WatchConfig.from_toml('[mirror]\nperiod = "year"')


# --- the test itself ----------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), usual=st.floats(0.3, 2.0), scale=st.floats(1e-3, 1e3),
       factor=st.floats(0.05, 3.0))
def test_scaling_both_sides_leaves_the_verdict_unchanged(seed, usual, scale, factor):
    rng = np.random.default_rng(seed)
    exports, imports = pair_history(rng, level=1e5, usual=usual, noise=0.1)
    imports[-1] *= factor
    a = score(NO_FLOORS, exports, imports)
    b = score(NO_FLOORS, exports * scale, imports * scale)
    assert a.fired.tolist() == b.fired.tolist()
    np.testing.assert_allclose(a.z, b.z, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.ratio, b.ratio, rtol=1e-9)
    np.testing.assert_allclose(b.exports[0], a.exports[0] * scale, rtol=1e-9)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), usual=st.floats(0.2, 3.0), noise=st.floats(0.0, 0.6),
       pick=st.integers(1, 24))
def test_a_ratio_within_its_history_never_fires(seed, usual, noise, pick):
    """This period's ratio equal to one of the pair's last 24 (at either alignment it is then within
    the history's range): no alarm, whatever the spread."""
    rng = np.random.default_rng(seed)
    exports = 1e5 * np.exp(rng.normal(0.0, 0.05, H + 1))
    exports[-2:] = exports[-3]  # steady exports: the same ratio at both alignments
    imports = exports * 1.05 * usual * np.exp(rng.normal(0.0, noise, H + 1))
    imports[-1] = exports[-1] * imports[-1 - pick] / exports[-1 - pick]
    s = score(MirrorParams(), exports, imports)
    assert bool(s.judged[0])
    # within the history: never beyond its most extreme period, so never a break of the usual ratio
    assert not s.fired.any()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), usual=st.floats(0.5, 1.5), factor=st.floats(0.0, 0.45),
       level=st.floats(1e5, 1e8))
def test_a_collapse_to_half_the_usual_ratio_with_material_exports_fires(seed, usual, factor, level):
    """Imports at most 45% of their usual share of the exports two months running (persistence)."""
    rng = np.random.default_rng(seed)
    exports, imports = pair_history(rng, level=level, usual=usual, noise=0.05, spread=0.03)
    imports[-2:] = exports[-2:] * 1.05 * usual * factor
    s = score(MirrorParams(), exports, imports)
    assert s.fired.tolist() == [True, False]  # on the export lane only
    assert s.ratio[0] <= 0.5 * s.usual[0]
    assert s.p_value[0] < 0.01
    assert s.imports[0] == pytest.approx(imports[-1], rel=1e-9, abs=1e-3)  # sums by differences of cumulative sums


def test_one_month_of_missing_imports_waits_for_a_second_unless_far_out_of_line():
    exports = np.full(H + 1, 1e6)
    imports = exports * 1.05 * 0.9 * np.exp(0.2 * (-1.0) ** np.arange(H + 1))  # log spread: MAD 0.2
    imports[-1] = exports[-1] * 1.05 * 0.9 * np.exp(-4 * 0.2 * 1.4826)  # z = 4
    once = score(MirrorParams(), exports, imports)
    assert once.judged[0] and 3.0 <= once.z[0] < 5.0 and not once.fired[0]
    assert score(MirrorParams(persist=1), exports, imports).fired[0]
    imports[-1] = exports[-1] * 1.05 * 0.9 * 0.02  # nothing arrived: z beyond z_strong, at once
    assert score(MirrorParams(), exports, imports).fired[0]


def test_immaterial_exports_and_short_histories_are_not_judged():
    rng = np.random.default_rng(3)
    exports, imports = pair_history(rng, level=10_000.0, usual=0.9, noise=0.05)
    imports[-1] *= 0.1
    assert not score(MirrorParams(), exports, imports).judged.any()  # 10k a month < min_exports
    exports, imports = pair_history(rng, level=1e6, usual=0.9, noise=0.05)
    imports[-1] *= 0.1
    exports[:-8] = imports[:-8] = np.nan  # seven months known: fewer than min_history_months
    assert not score(MirrorParams(), exports, imports).judged.any()
    assert score(MirrorParams(min_history_months=6, history_months=6, persist=1), exports, imports).fired[0]


def test_a_timing_difference_of_one_month_does_not_fire_but_a_lasting_gap_does():
    rng = np.random.default_rng(5)
    exports, imports = pair_history(rng, level=1e6, usual=0.9, noise=0.05, spread=0.02)
    exports[-2] *= 3  # a big month of exports ...
    imports[-1] = exports[-2] * 1.05 * 0.9  # ... arriving the next month
    assert not score(MirrorParams(), exports, imports).fired.any()
    assert score(MirrorParams(max_lag=0, persist=1), exports[1:-1], imports[:-2]).fired[0]  # same month: a gap
    imports[-1] = exports[-1] * 1.05 * 0.9 * 0.2
    imports[-2] = exports[-2] * 1.05 * 0.9 * 0.2  # not arriving in either month
    s = score(MirrorParams(), exports, imports)
    assert s.fired[0] and s.lag[0] in (0, 1)


def test_the_best_alignment_is_the_one_whose_history_agrees():
    """Goods that always arrive the month after they leave: only the lag-1 ratio is steady. With
    align = "best" that alignment alone is tested, so a collapse there fires although the same-month
    ratio (noisy) does not break; with "every" both must."""
    rng = np.random.default_rng(19)
    exports = 1e6 * np.exp(rng.normal(0.0, 0.5, H + 1))
    imports = np.concatenate([[1e6], exports[:-1]]) * 1.05 * 0.9 * np.exp(rng.normal(0.0, 0.03, H + 1))
    imports[-2:] = np.array([exports[-3], exports[-2]]) * 1.05 * 0.9 * 0.2
    best = score(MirrorParams(align="best"), exports, imports)
    assert best.fired[0] and best.lag[0] == 1 and best.usual[0] == pytest.approx(0.9, rel=0.05)
    every = score(MirrorParams(align="every"), exports, imports)
    assert every.judged[0] and every.z[0] < best.z[0]  # the noisy same-month alignment is the charitable one


def test_protected_months_of_the_export_lane_stay_out_of_the_usual_ratio():
    rng = np.random.default_rng(7)
    exports, imports = pair_history(rng, level=1e6, usual=0.9, noise=0.05, spread=0.02)
    imports[-20:] *= 0.25  # a gap of 20 months: the majority of the last 33 would make it usual ...
    longer = MirrorParams(history_months=33)
    assert not score(longer, exports, imports).fired[0]
    protected = np.zeros((2, H), bool)
    protected[0, -19:] = True  # ... unless those months were kept out of the baseline (alerted)
    s = score(longer, exports, imports, protected)
    assert s.fired[0] and s.usual[0] == pytest.approx(0.9, rel=0.1)


def test_quarters_are_judged_at_quarter_ends_only():
    rng = np.random.default_rng(11)
    exports, imports = pair_history(rng, level=1e6, usual=0.9, noise=0.05, spread=0.02)
    imports[-4:] *= 0.2
    quarter = MirrorParams(period="quarter", min_history_months=12)
    assert score(quarter, exports, imports, month=2022 * 12 + 5).fired[0]  # June
    assert not score(quarter, exports, imports, month=2022 * 12 + 4).judged.any()  # May
    assert not score(quarter, exports, imports).judged.any()  # no month: nothing to align on


def test_the_rise_is_tested_only_when_asked():
    rng = np.random.default_rng(13)
    exports, imports = pair_history(rng, level=1e6, usual=0.9, noise=0.05, spread=0.02)
    imports[-2:] = exports[-2:] * 1.05 * 0.9 * 4
    assert not score(MirrorParams(), exports, imports).fired[0]
    assert score(MirrorParams(rise=True), exports, imports).fired[0]


def test_rows_without_their_other_side_are_left_alone():
    d = MirrorDetector()
    s = d.score_many(pair=np.array([0, 1, -1]), side=np.array([1, -1, 0]), values=np.ones((3, H)),
                     value=np.ones(3), protected=np.zeros((3, H), bool))
    assert not s.judged.any() and np.isnan(s.ratio).all()


# --- every path: engine, columnar replay, batch, snapshot ---------------------------------------

def pair_records(gap_from: str = "2022-05", seed: int = 1) -> list:
    """Germany's monthly exports of 854231 to Kyrgyzstan and Kyrgyzstan's imports of it from Germany;
    from ``gap_from`` the imports are 30% of their usual share."""
    rng = np.random.default_rng(seed)
    rows = []
    for y in (2019, 2020, 2021, 2022):
        for m in range(1, 13):
            period = f"{y}-{m:02d}"
            x = 200_000 * np.exp(rng.normal(0, 0.15))
            imp = x * 1.05 * 0.92 * np.exp(rng.normal(0, 0.08)) * (0.3 if period >= gap_from else 1.0)
            rows.append({"period": period, "reporter": "DE", "partner": "KG", "flow": "export",
                         "hs_code": "85423190", "value": round(x, 2), "currency": "USD"})
            rows.append({"period": period, "reporter": "KG", "partner": "DE", "flow": "import",
                         "hs_code": "854231", "value": round(imp, 2), "currency": "USD"})
    return [parse_mapping(r) for r in rows]


def engine_alerts(records, config=None):
    engine = Engine(config)
    engine.add_many(records)
    engine.finish(close_last=True)
    return engine, [a.to_dict() for a in engine.drain()]


def test_the_engine_alerts_the_export_lane_naming_both_figures():
    engine, alerts = engine_alerts(pair_records())
    assert alerts, "a mirror gap from 2022-05 must alert"
    first = alerts[0]
    # the gap opens in 2022-05; persistence: the second month in a row alerts
    assert (first["period"], first["series_id"], first["detectors"]) == ("2022-06", "DE>KG export 854231", ["mirror"])
    ev = first["evidence"]
    assert ev["mirror_ratio"] < 0.5 * ev["mirror_usual_ratio"]
    assert ev["mirror_usual_ratio"] == pytest.approx(0.92, rel=0.1)
    assert ev["mirror_exports"] > 100_000 and ev["mirror_imports"] < ev["mirror_exports"]
    assert "Kyrgyzstan reported imports of this code from Germany" in first["explanation"]
    assert all(a["flow"] == "export" for a in alerts)  # the import lane never alerts on its own
    assert engine.counts["records used"] == 96


def test_without_a_gap_or_with_the_mirror_off_nothing_alerts():
    assert engine_alerts(pair_records(gap_from="2099-01"))[1] == []
    off = WatchConfig.from_toml("[mirror]\nenabled = false")
    engine, alerts = engine_alerts(pair_records(), off)
    assert alerts == [] and engine.counts["not watched: partner"] == 48
    detectors_off = WatchConfig.from_toml('[policy]\ndetectors = ["seasonal_surge"]')
    assert engine_alerts(pair_records(), detectors_off)[1] == []


def test_an_import_surge_is_evidence_not_an_alert():
    records = pair_records(gap_from="2099-01")
    records = [r if not (r.flow == "import" and r.period >= "2022-03") else
               parse_mapping({**r.to_dict(), "value": r.value * 20}) for r in records]
    _, alerts = engine_alerts(records)
    assert all(a["flow"] == "export" for a in alerts)


def test_replay_batch_and_engine_agree_on_the_mirror_alerts():
    records = pair_records()
    _, expected = engine_alerts(records)
    run = ColumnarReplay(WatchConfig.default())
    run.feed(Block.from_records(records), source=0, lines=list(range(1, len(records) + 1)))
    columnar = [a.to_dict() for a in run.run(final_month="closed").engine.drain()]
    assert columnar == expected
    batch = detect(monthly_cells(records_frame(records), WatchConfig.default()))
    assert [(a.period, a.series_id, a.detectors, a.evidence["mirror_ratio"]) for a in batch] == [
        (a["period"], a["series_id"], tuple(a["detectors"]), a["evidence"]["mirror_ratio"]) for a in expected]


def test_a_snapshot_at_a_month_boundary_goes_on_alike():
    records = pair_records()
    _, expected = engine_alerts(records)
    cut = 2022 * 12 + 2  # 2022-03
    engine = Engine()
    engine.add_many([r for r in records if r.month < cut])
    engine.close_until(cut)
    before = [a.to_dict() for a in engine.drain()]
    again = Engine.from_snapshot(engine.snapshot())
    again.add_many([r for r in records if r.month >= cut])
    again.finish(close_last=True)
    assert before + [a.to_dict() for a in again.drain()] == expected
