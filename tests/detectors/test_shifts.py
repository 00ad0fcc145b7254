"""Common shifts across goods: a reporter's lanes (or a hub's) moving together, found once."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transitwatch.detectors.errors import InvalidParameterError
from transitwatch.detectors.shifts import ShiftParams, common_shifts

HUBS = ("KG", "KZ", "AM", "GE")
REPORTERS = ("CZ", "DE", "PL", "IT", "FR")


def _lanes(seed=3, months=36, shift=None, hub_shift=None, noise=0.1):
    """Every reporter x hub x 3 codes, steady with noise; ``shift`` (reporter, month, factor) or
    ``hub_shift`` (hub, month, factor) moves every lane of one side from a month on."""
    rng = np.random.default_rng(seed)
    keys = [(r, h, hs) for r in REPORTERS for h in HUBS for hs in ("854231", "854232", "854239")]
    expected = np.full((len(keys), months), 80_000.0)
    value = expected * rng.lognormal(0, noise, expected.shape)
    for moved, pos in ((shift, 0), (hub_shift, 1)):
        if moved is None:
            continue
        side, month, factor = moved
        rows = [i for i, k in enumerate(keys) if k[pos] == side]
        value[rows, month:] *= factor
    return keys, value, expected


def test_a_reporter_whose_every_lane_doubles_is_one_finding_at_its_month():
    keys, value, expected = _lanes(shift=("CZ", 24, 2.0))
    found = common_shifts(keys, first=24_240, value=value, expected=expected, side="reporter")
    assert [(f.side, f.period) for f in found] == [("CZ", "2022-01")]
    assert found[0].ratio == pytest.approx(2.0, rel=0.1) and found[0].counterparts == len(HUBS)
    assert all(m[0] == "CZ" for m in found[0].members)
    assert common_shifts(keys, first=24_240, value=value, expected=expected, side="partner") == []


def test_a_hub_whose_lanes_rise_from_every_reporter_is_a_hub_shift_not_a_reporter_shift():
    keys, value, expected = _lanes(hub_shift=("AM", 26, 1.6))
    hubs = common_shifts(keys, first=24_240, value=value, expected=expected, side="partner")
    assert [(f.side, f.period) for f in hubs] == [("AM", "2022-03")]
    assert common_shifts(keys, first=24_240, value=value, expected=expected, side="reporter") == []


def test_steady_lanes_and_the_first_year_give_nothing():
    keys, value, expected = _lanes(noise=0.3)
    assert common_shifts(keys, first=24_240, value=value, expected=expected, side="reporter") == []
    keys, value, expected = _lanes(shift=("CZ", 6, 2.0))
    assert common_shifts(keys, first=24_240, value=value, expected=expected, side="reporter") == [], \
        "a step in the first year: expected values rest on less than a year"


def test_parameters_are_checked():
    with pytest.raises(InvalidParameterError):
        ShiftParams(calm_ratio=2.0, min_ratio=1.5)
    with pytest.raises(InvalidParameterError):
        ShiftParams(min_lanes=2)


@given(seed=st.integers(0, 10_000), month=st.integers(12, 30), factor=st.floats(1.8, 4.0),
       scale=st.sampled_from([1.0, 10.0]))
@settings(max_examples=40, deadline=None)
def test_found_whatever_the_order_of_the_lanes_and_the_money_scale(seed, month, factor, scale):
    keys, value, expected = _lanes(seed=seed, shift=("PL", month, factor))
    perm = np.random.default_rng(seed).permutation(len(keys))
    a = common_shifts(keys, first=24_240, value=value, expected=expected, side="reporter")
    b = common_shifts([keys[i] for i in perm], first=24_240, value=value[perm] * scale,
                      expected=expected[perm] * scale, side="reporter")
    assert [(f.side, f.period, f.members) for f in a] == [(f.side, f.period, f.members) for f in b]
    assert [f.side for f in a] == ["PL"] and a[0].period == f"{2020 + month // 12}-{month % 12 + 1:02d}"


def test_a_replay_names_the_reporter_shift_once_with_the_cases_it_explains(tmp_path):
    import orjson

    from transitwatch.streams.replay import replay

    keys, value, _ = _lanes(shift=("CZ", 24, 2.0))
    periods = [f"{2020 + m // 12}-{m % 12 + 1:02d}" for m in range(value.shape[1])]
    lines = [orjson.dumps({"period": p, "reporter": r, "partner": h, "flow": "export", "hs_code": hs,
                           "value": float(value[i, m]), "currency": "USD"})
             for m, p in enumerate(periods) for i, (r, h, hs) in enumerate(keys)]
    src = tmp_path / "shift.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    summary = replay([str(src)], final_month="closed").summary([str(src)])
    shifts = summary["reporter shifts"]
    assert shifts["findings"] == 1
    assert shifts["each"][0].startswith("CZ's ") and "from 2022-01" in shifts["each"][0]
    assert "opened on those lanes since" in shifts["each"][0]
    assert summary["hub-wide shifts"] == 0
