"""The blind-spot benchmark's scoring, on hand-made alerts and truth, and one tiny end-to-end run."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import blindspots as bs
from benchmarks.cases import TruthView, score_cases
from benchmarks.scoring import month_index
from transitwatch.detectors.base import DETECTORS
from transitwatch.detectors.watch import WatchConfig

K1, K2 = ("DE", "KG", "export", "854231"), ("FR", "KG", "export", "854231")
FIRST, LAST = month_index("2020-01"), month_index("2023-12")


def _alert(key, period, detectors=(), **kw):
    return {"reporter": key[0], "partner": key[1], "flow": key[2], "hs6": key[3], "period": period,
            "detectors": list(detectors), **kw}


def _series(key, family, role, variant=""):
    return {"kind": "series", "reporter": key[0], "partner": key[1], "flow": key[2], "hs6": key[3],
            "density": "regular", "family": family, "role": role, "variant": variant}


def _surge(key, family, onset, end=None):
    return {"kind": "surge", "reporter": key[0], "partner": key[1], "flow": key[2], "hs6": key[3], "pattern": family,
            "shape": "step", "onset": onset, "end": end, "factor": 5.0, "density": "regular"}


def _score(rows, alerts):
    truth = TruthView.from_rows(rows, last=LAST)
    return truth, score_cases(alerts, truth, {}, first=FIRST, last=LAST, floor=10_000.0)


def test_named_events_counts_only_the_right_detector_within_two_months():
    ev = [bs._Ev(K1, month_index("2022-03")), bs._Ev(K2, month_index("2022-03"))]
    alerts = [_alert(K1, "2022-05", ["seasonal_surge", "diversion"]), _alert(K2, "2022-06", ["diversion"])]
    assert bs.named_events(ev, alerts, ("diversion",)) == 0.5        # K2's is three months late
    assert bs.named_events(ev, alerts, ("novelty",)) == 0.0
    assert math.isnan(bs.named_events([], alerts, ("diversion",)))


def test_family_metrics_of_a_true_family():
    rows = [_series(K1, "one_buyer", "pattern"), _series(K2, "one_buyer", "control"),
            _surge(K1, "one_buyer", "2022-03", "2022-09")]
    alerts = [_alert(K1, "2022-04", ["new_consignees"], case_id="a"), _alert(K2, "2021-02", ["seasonal_surge"], case_id="b")]
    truth, score = _score(rows, alerts)
    m = bs.family_metrics("one_buyer", rows, alerts, score, truth, first=FIRST, last=LAST)
    assert (m["events"], m["recall"], m["named"]) == (1, 1.0, 1.0)
    assert m["controls"]["false cases"] == 1 and m["controls"]["lane-months"] == 48
    assert m["controls"]["false cases / 1000"] == pytest.approx(1000 / 48)


def test_false_rates_leave_out_windows_and_grace_months():
    rows = [_series(K1, "moderate", "pattern"), _surge(K1, "moderate", "2022-03", "2022-06")]
    alerts = [_alert(K1, "2022-07", case_id="x"), _alert(K1, "2023-01", case_id="y")]
    truth, score = _score(rows, alerts)
    r = bs.false_rates(score, alerts, truth, [K1], start=FIRST, stop=LAST)
    # the window 2022-03..2022-05 and its two grace months are neither true nor false
    assert r["lane-months"] == 48 - 5 and r["false cases"] == 1
    assert r["false alarms / 1000"] == pytest.approx(1000 / 43)


def test_reporter_level_compares_shifted_lanes_with_controls_from_the_onset():
    rows = [_series(K1, "reporter_level", "decoy"), _series(K2, "reporter_level", "control"),
            {"kind": "reporter_level", "reporter": "DE", "onset": "2022-01", "end": None, "factor": 2.0}]
    alerts = [_alert(K1, "2021-05", case_id="early"), _alert(K1, "2022-04", case_id="a"),
              _alert(K1, "2022-05", ["reporter_shift"], case_id="a", detector="reporter_shift")]
    truth, score = _score(rows, alerts)
    m = bs.family_metrics("reporter_level", rows, alerts, score, truth, first=FIRST, last=LAST)
    assert m["shifted"]["lane-months"] == 24 and m["shifted"]["false cases"] == 1      # the 2021 case is before the onset
    assert m["controls"]["false cases"] == 0 and m["shifted lanes alerted"] == 1
    assert (m["findings"], m["findings naming the reporter"]) == (1, 1)


def test_diversion_decoys_count_lanes_naming_diversion():
    rows = [_series(K1, "diversion", "decoy", "rise_only"), _series(K2, "diversion", "decoy", "fall_only")]
    alerts = [_alert(K1, "2022-04", ["diversion"], case_id="a")]
    truth, score = _score(rows, alerts)
    m = bs.family_metrics("diversion", rows, alerts, score, truth, first=FIRST, last=LAST)
    assert m["rise_only"]["naming diversion"] == 1 and m["fall_only"]["naming diversion"] == 0
    assert m["events"] == 0 and math.isnan(m["recall"])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(["ramp", "reporter_shift", "hub_shift", "novelty", "corroboration", ""]), max_size=4),
       st.sampled_from(["", "reporter_level_change", "alert"]))
def test_a_finding_is_a_record_that_names_a_reporter_or_hub_shift(detectors, kind):
    record = {"detectors": detectors, "kind": kind}
    expected = any(w in d for d in [*detectors, kind] for w in bs.FINDING)
    assert bool(bs.findings([record])) == expected


@pytest.mark.parametrize("detector", DETECTORS)
def test_policy_without_leaves_out_one_detector(detector):
    cfg = WatchConfig.from_toml(bs.policy_without(detector))
    assert set(cfg.params["policy"].detectors) == set(WatchConfig.default().params["policy"].detectors) - {detector}


def test_policy_without_an_unknown_detector_fails():
    with pytest.raises(ValueError, match="DETECTORS"):
        bs.policy_without("nope")


def test_first_case_uses_case_onsets():
    alerts = [_alert(K1, "2022-06", case_onset="2022-05") | {"partner": "AM"}, _alert(K2, "2021-03") | {"partner": "AM"}]
    assert bs.first_case(alerts, "AM") == "2022-05" and bs.first_case(alerts, "KZ") is None


def test_tiny_end_to_end_run_writes_the_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bs, "RECALL_TARGETS", {"one_buyer": 0.85})
    res = bs.run_seed(1, tmp_path, size=3, ablation=False, log=None, families=("one_buyer", "q4_seasonal"))
    together = res["together"]["declarations"][bs.TOGETHER]
    assert together["families"]["one_buyer"]["events"] == 3
    assert 0.0 <= together["summary"]["false cases / 1000"]
    assert set(res["alone"]["monthly"]) == {"one_buyer", "q4_seasonal"}
    rows = bs.target_rows({1: res}, None)
    assert rows[0][0].startswith("one_buyer recall") and rows[0][2] in ("met", "**missed**")
    doc = tmp_path / "doc.md"
    bs.write_doc(doc, {1: res}, None, command="python -m benchmarks.blindspots --test", seconds=1.0, size=3)
    text = doc.read_text()
    assert text.startswith("# Detection blind spots") and "Do not edit by hand" in text and "| one_buyer |" in text
