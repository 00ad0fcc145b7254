"""Severity: confidence graded on the family of lane-months, materiality, and their combination."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transitwatch.detectors import severity as grading
from transitwatch.detectors.engine import Engine
from transitwatch.detectors.errors import ConfigError, InvalidParameterError
from transitwatch.detectors.policy import SEVERITIES, AlertPolicy, PolicyParams
from transitwatch.detectors.seasonal import SurgeParams
from transitwatch.detectors.table import window_for
from transitwatch.detectors.watch import WatchConfig

NAN = float("nan")
P = PolicyParams()
ps = st.one_of(st.just(NAN), st.floats(1e-300, 1.0))
money = st.floats(-1e6, 1e10)
families = st.sampled_from([1.0, 240.0, 57_000.0, 1e6, 71_712_000.0, 1e12])


def _grade(p_month, p_evidence, agree, excess, priority, family):
    c = grading.confidence(np.array([p_month]), np.array([p_evidence]), np.array([agree]), family_size=family,
                           alpha_critical=P.alpha_critical, alpha_high=P.alpha_high)
    m = grading.materiality(np.array([excess]), np.array([priority]), minor=P.minor_excess,
                            large=P.large_excess, very_large=P.very_large_excess)
    return int(c[0]), int(m[0]), int(grading.severity(c, m)[0])


@given(p_month=ps, p_other=st.floats(1e-300, 1.0), agree=st.booleans(), excess=money, priority=st.booleans(),
       family=families)
@settings(max_examples=500, deadline=None)
def test_critical_needs_the_months_own_p_family_wise_at_most_alpha_critical(p_month, p_other, agree, excess,
                                                                             priority, family):
    # the lane's evidence is never weaker than the month's (the month is one of its lines)
    p_evidence = p_other if math.isnan(p_month) else min(p_other, p_month)
    conf, mat, sev = _grade(p_month, p_evidence, agree, excess, priority, family)
    if SEVERITIES[sev] == "critical":
        assert not math.isnan(p_month) and p_month * family <= P.alpha_critical
        assert excess >= P.minor_excess and mat >= 2
    if SEVERITIES[sev] in ("high", "critical"):
        assert p_evidence * family <= 1.0, "high needs at least medium evidence of the lane's own"
        assert excess >= P.minor_excess and (conf >= 2 or mat == 3), "weak evidence needs very large money"


@given(p_month=ps, p_evidence=st.floats(1e-300, 1.0), agree=st.booleans(), excess=money, priority=st.booleans(),
       family=families, shrink=st.floats(1e-6, 1.0), more=st.floats(1.0, 1e4))
@settings(max_examples=500, deadline=None)
def test_severity_never_falls_with_more_evidence_or_more_money(p_month, p_evidence, agree, excess, priority,
                                                               family, shrink, more):
    base = _grade(p_month, p_evidence, agree, excess, priority, family)
    stronger = [
        _grade(p_month * shrink, p_evidence, agree, excess, priority, family),
        _grade(p_month, p_evidence * shrink, agree, excess, priority, family),
        _grade(p_month, p_evidence, True, excess, priority, family),
        _grade(p_month, p_evidence, agree, excess, priority, family * shrink),
    ]
    richer = [
        _grade(p_month, p_evidence, agree, abs(excess) * more, priority, family),
        _grade(p_month, p_evidence, agree, excess, True, family),
    ]
    for g in stronger:
        assert g[0] >= base[0] and g[2] >= base[2]
    for g in richer:
        assert g[1] >= base[1] and g[2] >= base[2]


def test_the_severity_table_rises_along_both_axes_and_critical_needs_both():
    t = grading.SEVERITY_TABLE
    assert (np.diff(t, axis=0) >= 0).all() and (np.diff(t, axis=1) >= 0).all()
    assert {SEVERITIES[s] for s in t[3, 2:]} == {"critical"} and (t[:3] < 3).all() and (t[:, :2] < 3).all()
    assert (t[0] < 2).all() and (t[1, :3] < 2).all(), "high needs high confidence, or medium and very large money"
    assert (t[:, 0] < 2).all(), "high needs money above minor_excess"


def test_a_huge_lane_with_strong_evidence_is_not_medium():
    """Armenia's gold exports (HS 710812, USD 20-105m a month in 2022 against under 0.1m): the
    month's p is weak on a lumpy lane, the months pooled are strong; on the one-lane watch
    (240 lane-months) that is high, with or without the CHPL tier."""
    conf, mat, sev = _grade(0.0059, 8e-5, False, 104.7e6, False, 240.0)
    assert (grading.CONFIDENCES[conf], grading.MATERIALITIES[mat], SEVERITIES[sev]) == ("high", "very high", "high")
    # a rise of p = 0.03 on one of 57,000 lane-months (the DE>KZ 852691) is weak, however large
    conf, mat, sev = _grade(0.03, 0.03, False, 5e6, True, 57_000.0)
    assert (grading.CONFIDENCES[conf], SEVERITIES[sev]) == ("low", "medium")


def test_pooled_months_and_new_consignee_lines():
    # three months each at z = 3: one month is p = 1.3e-3, the three pooled 2 x 1e-7
    p = grading.pooled_months_p(np.array([3.0]), np.array([3.0]), np.array([3.0]))[0]
    assert 1e-7 < p < 3e-7
    # a month up after two ordinary ones gains nothing from pooling
    assert grading.pooled_months_p(np.array([3.0]), np.array([0.0]), np.array([0.0]))[0] > 2 * 1.3e-3
    # count and value are treated as perfectly correlated: weaker than the detector's own Stouffer sum
    stat = np.array([6.0])
    assert grading.combined_z_p(stat, value_weight=0.5, party_weight=1.0)[0] > 3 * 0.5 * math.erfc(6 / math.sqrt(2))


def test_a_new_lane_gets_a_p_from_its_empty_months_or_its_declarations():
    empty = np.zeros((2, 36))
    months = grading.new_lane_p(empty, np.array([80e3, 10e3]), min_value=50e3, count=np.array([NAN, NAN]),
                                counts=np.full((2, 36), NAN), lookback=12)
    assert months[0] == pytest.approx(2 * 0.5 / 37) and months[1] == 1.0
    # eight declarations where the lane had none in a year: Poisson tail at rate 0.5/13
    counted = grading.new_lane_p(empty[:1], np.array([80e3]), min_value=50e3, count=np.array([8.0]),
                                 counts=np.zeros((1, 36)), lookback=12)
    assert counted[0] < 1e-10


def test_best_peer_is_the_best_other_lane_of_the_group_alerting_alone():
    p = np.array([1e-9, 1e-9, 1e-3, 1e-12, 0.5])
    group = np.array([0, 0, 0, 1, 1])
    alone = np.array([True, True, True, False, True])
    assert grading.best_peer(p, group, alone).tolist() == [1e-9, 1e-9, 1e-9, 0.5, math.inf]


def _surging_window(k: float = 1.0):
    rng = np.random.default_rng(3)
    history = list(200_000.0 * k * rng.lognormal(0, 0.1, 36))
    return window_for([history, history], value=[2_000_000.0 * k, 200_000.0 * k], count=[120.0, 40.0],
                      counts=[[40.0] * 36] * 2)


def test_policy_grades_on_the_family_size():
    """The same surge is critical in a small family, and graded down as the family grows."""
    w = _surging_window()
    seen = []
    for family in (1_000.0, 1e9, 1e15):
        v = AlertPolicy(policy=PolicyParams(family_size=family)).decide(w)
        assert v.alert[0] and not v.alert[1]
        assert v.p_family[0] == pytest.approx(min(1.0, v.surge.p_value[0] * family))
        seen.append((grading.CONFIDENCES[v.confidence[0]], SEVERITIES[v.severity[0]]))
    assert seen[0] == ("very high", "critical") and seen[-1][0] in ("low", "medium")
    assert [SEVERITIES.index(s) for _, s in seen] == sorted((SEVERITIES.index(s) for _, s in seen), reverse=True)


@given(
    history=st.lists(st.one_of(st.just(0.0), st.floats(1.0, 1e8)), min_size=12, max_size=36),
    value=st.floats(0.0, 1e10),
    count=st.one_of(st.just(NAN), st.integers(0, 500).map(float)),
    family=st.sampled_from([10.0, 1e3, 1e5, 1e7]),
)
@settings(max_examples=200, deadline=None)
def test_policy_critical_means_family_wise_p_at_most_alpha_critical(history, value, count, family):
    counts = None if math.isnan(count) else [[max(1.0, count / 3)] * len(history)]
    w = window_for([history], value=[value], count=[count], counts=counts)
    v = AlertPolicy(surge=SurgeParams(min_excess=1_000, strong_excess=1_000),
                    policy=PolicyParams(family_size=family)).decide(w)
    if SEVERITIES[v.severity[0]] == "critical":
        assert v.surge.eligible[0] and v.surge.p_value[0] * family <= 0.001
    if v.alert[0]:
        assert 0.0 < v.p_evidence[0] <= 1.0 and v.p_evidence[0] <= 4 * v.surge.p_value[0] + 1e-300


def test_money_scales_with_the_currency():
    """Every money threshold times k, every value times k: the same grades."""
    grades = []
    for k in (1.0, 1e-3, 250.0):
        params = PolicyParams(family_size=1_000.0, minor_excess=50e3 * k, large_excess=250e3 * k,
                              very_large_excess=2.5e6 * k)
        v = AlertPolicy(surge=SurgeParams(min_excess=10e3 * k, strong_excess=50e3 * k), policy=params).decide(
            _surging_window(k))
        grades.append((v.confidence.tolist(), v.materiality.tolist(), v.severity.tolist()))
    assert grades[0] == grades[1] == grades[2]


def test_the_family_is_derived_from_the_watch_unless_configured():
    shipped = WatchConfig.default().params["policy"].family_size
    assert shipped == grading.SHIPPED_LANES * 120 == AlertPolicy().family_size
    one_lane = WatchConfig.from_toml('[watch]\nreporters = ["AM"]\nhubs = ["RU"]\ndestinations = []\nhs6 = ["710812"]\n'
                                     'flows = ["export"]\n')
    assert one_lane.params["policy"].family_size == 120
    two = WatchConfig.from_toml('[watch]\nreporters = ["DE", "FR"]\nhubs = ["KG"]\n[policy]\nfamily_months = 60\n')
    assert two.params["policy"].family_size == 2 * 3 * 2 * 50 * 60  # KG and the destinations RU, BY
    fixed = WatchConfig.from_toml('[policy]\nfamily_size = 60000\n')
    assert fixed.params["policy"].family_size == 60_000


@pytest.mark.parametrize("key, value", [("family_size", -1.0), ("family_size", 0.5), ("family_months", 0),
                                        ("alpha_high", 1e-4), ("alpha_critical", 0.0), ("large_excess", 10.0)])
def test_bad_severity_settings_fail_at_start_up(key, value):
    with pytest.raises(InvalidParameterError):
        PolicyParams(**{key: value})
    with pytest.raises(ConfigError, match=key):
        WatchConfig.from_toml(f"[policy]\n{key} = {value}\n")


def test_the_points_rules_keys_are_gone():
    with pytest.raises(ConfigError, match="strong_score"):
        WatchConfig.from_toml("[policy]\nstrong_score = 6.0\n")


def test_alert_record_shows_confidence_materiality_and_the_family_p():
    """On a watch of one lane the family is small: a dense lane's x10 month is critical and says why."""
    cfg = WatchConfig.from_toml('[watch]\nreporters = ["DE"]\nhubs = ["KG"]\ndestinations = []\nhs6 = ["854231"]\n')
    e = Engine(cfg)
    from transitwatch.detectors.contract import parse_mapping

    rng = np.random.default_rng(0)
    i = 0
    for m in range(36):
        n = 40 if m < 35 else 160
        for _ in range(n):
            i += 1
            e.add(parse_mapping({"declaration_id": f"d{i}", "date": f"{2020 + m // 12}-{m % 12 + 1:02d}-10",
                                 "reporter": "DE", "partner": "KG", "hs_code": "85423190",
                                 "value": float(5_000 * rng.lognormal(0, 0.3)), "currency": "USD"}))
    e.finish(close_last=True)
    last = [a for a in e.drain() if a.period == "2022-12" and not a.early]
    assert last, "the x4 month alerts"
    a = last[0].to_dict()
    family = 1 * 1 * 2 * 1 * 120
    assert a["evidence"]["family_size"] == family
    assert a["evidence"]["p_family"] == pytest.approx(min(1.0, a["p_value"] * family))
    assert a["confidence"] == "very high" and a["materiality"] in ("high", "very high")
    assert a["severity"] == "critical"
    assert list(a).index("materiality") == list(a).index("confidence") + 1
