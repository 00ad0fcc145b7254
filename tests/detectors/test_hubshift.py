"""The hub shift: most reporters' lanes of one HS6 into one hub up in the same month (the 2022
pattern) alert together, though no lane is out of line on its own; few lanes moving together do not."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transitwatch.detectors.contract import parse_mapping
from transitwatch.detectors.engine import Engine
from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.detectors.hubshift import HubShiftDetector, HubShiftParams
from transitwatch.detectors.watch import WatchConfig

REPORTERS = ("AT", "BE", "BG", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HU", "IT", "LT", "NL", "PL")


def _stat(period, value, reporter, partner="AM"):
    return parse_mapping({"period": period, "reporter": reporter, "partner": partner, "flow": "export",
                          "hs_code": "85423190", "value": value, "currency": "USD"})


def _months(n):
    return [f"{2019 + i // 12}-{i % 12 + 1:02d}" for i in range(n)]


def _hub(reporters, factor, *, onset=36, total=40, seed=11, config=None):
    """Every reporter's lane into Armenia steady for three years, then ``factor`` from ``onset``."""
    e = Engine(config)
    rng = np.random.default_rng(seed)
    for i, p in enumerate(_months(total)):
        for r in reporters:
            e.add(_stat(p, 200_000 * rng.lognormal(0, 0.12) * (factor if i >= onset else 1.0), r))
    e.finish(close_last=True)
    return e.drain()


def test_a_hub_wide_rise_of_one_and_a_half_alerts_in_its_first_month():
    alerts = _hub(REPORTERS, 1.6)
    shift = [a for a in alerts if "hub_shift" in a.detectors]
    assert shift, "16 reporters x1.6 at once: the hub moved"
    assert min(a.period for a in shift) == "2022-01", "in the month the hub moved"
    first = [a for a in shift if a.period == "2022-01"]
    assert len(first) >= len(REPORTERS) // 2
    ev = first[0].evidence
    assert ev["hub_shift_reporters"] == len(REPORTERS) and ev["hub_shift_rising"] >= 8
    assert ev["hub_shift_ratio"] == pytest.approx(1.6, rel=0.15)
    assert "reporters' lanes of this code into Armenia rose this month together" in first[0].explanation
    assert not any(a.period < "2022-01" for a in alerts), "three steady years: nothing before"


def test_few_reporters_moving_together_are_not_a_hub_shift():
    alerts = _hub(REPORTERS[:6], 1.6)
    assert not any("hub_shift" in a.detectors for a in alerts), "6 lanes: below min_reporters"


def test_the_hub_shift_can_be_switched_off():
    cfg = WatchConfig.from_toml('[policy]\ndetectors = ["seasonal_surge", "ramp", "novelty", "new_consignees", '
                                '"diversion", "corroboration"]\n')
    assert not any("hub_shift" in a.detectors for a in _hub(REPORTERS, 1.6, config=cfg))


def test_parameters_are_checked():
    with pytest.raises(InvalidParameterError):
        HubShiftParams(min_reporters=1)
    with pytest.raises(InvalidParameterError):
        HubShiftParams(min_total_ratio=0.5)


@st.composite
def _groups(draw):
    n = draw(st.integers(1, 40))
    group = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    ratio = np.array(draw(st.lists(st.floats(0.0, 5.0), min_size=n, max_size=n)))
    expected = np.array(draw(st.lists(st.floats(1e3, 1e6), min_size=n, max_size=n)))
    eligible = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    return group, ratio, expected, eligible


@given(g=_groups(), scale=st.sampled_from([1.0, 1000.0]), seed=st.integers(0, 1000))
@settings(max_examples=150, deadline=None)
def test_order_and_money_scale_change_nothing_and_only_rising_lanes_fire(g, scale, seed):
    group, ratio, expected, eligible = g
    value = ratio * expected
    p = HubShiftParams(min_reporters=3)
    scaled = HubShiftParams(min_reporters=3, min_excess=p.min_excess * scale, min_total_excess=p.min_total_excess * scale)
    d, ds = HubShiftDetector(p), HubShiftDetector(scaled)
    s = d.score_many(group=group, eligible=eligible, ratio=ratio, excess=value - expected, value=value, expected=expected)
    assert not (s.fired & ~eligible).any()
    assert (ratio[s.fired] >= p.rise_ratio).all()
    t = ds.score_many(group=group, eligible=eligible, ratio=ratio, excess=(value - expected) * scale,
                      value=value * scale, expected=expected * scale)
    assert s.fired.tolist() == t.fired.tolist()
    perm = np.random.default_rng(seed).permutation(group.size)
    u = d.score_many(group=group[perm], eligible=eligible[perm], ratio=ratio[perm], excess=(value - expected)[perm],
                     value=value[perm], expected=expected[perm])
    assert u.fired.tolist() == s.fired[perm].tolist()
    assert np.allclose(u.median_ratio, s.median_ratio[perm], equal_nan=True)


def test_a_replay_reports_the_hub_shift_once_in_its_summary(tmp_path):
    import orjson

    from transitwatch.streams.replay import replay

    rng = np.random.default_rng(11)
    lines = [orjson.dumps({"period": p, "reporter": r, "partner": "AM", "flow": "export", "hs_code": "85423190",
                           "value": 200_000 * rng.lognormal(0, 0.12) * (1.6 if i >= 36 else 1.0), "currency": "USD"})
             for i, p in enumerate(_months(40)) for r in REPORTERS]
    src = tmp_path / "am.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    result = replay([str(src)], final_month="closed")
    shifts = result.summary([str(src)])["hub shifts"]
    assert shifts["findings"] == 1, "one hub and HS6: one finding, however many lanes and months"
    assert shifts["earliest"][0].startswith("AM 854231 from 2022-01: ")
    assert sum("hub_shift" in a.detectors for a in result.alerts) > 1
