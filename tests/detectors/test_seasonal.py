"""The learned season (``transitwatch.detectors.seasonal.season_profile``): a peak that comes every year is
the lane's, one that does not is a surge."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from transitwatch.detectors.contract import parse_mapping
from transitwatch.detectors.engine import Engine
from transitwatch.detectors.policy import AlertPolicy
from transitwatch.detectors.seasonal import SurgeParams, season_profile
from transitwatch.detectors.table import window_for
from transitwatch.detectors.watch import WatchConfig

NAN = float("nan")
PROFILE = dict(min_share=0.75, min_years=2, shrink=4.0, max_factor=4.0)
LEARN = WatchConfig.from_toml("[surge]\nlearn_season = true")
Q4 = (9, 10, 11)


def _stat(period: str, value: float) -> object:
    return parse_mapping({"period": period, "reporter": "DE", "partner": "KG", "flow": "export",
                          "hs_code": "85423190", "value": value, "currency": "USD"})


def _q4_lane(years: int = 5, *, seed: int = 0, level: float = 100_000.0) -> list[float]:
    """A dense lane from January 2019, every October to December three times its other months."""
    rng = np.random.default_rng(seed)
    return [level * (3.0 if m % 12 in Q4 else 1.0) * float(rng.lognormal(0, 0.15)) for m in range(12 * years)]


def _alerts(values: list[float]) -> dict[str, tuple[str, ...]]:
    """Month-end alerting periods of one lane of monthly statistics, with their detectors."""
    engine = Engine(LEARN)
    for m, v in enumerate(values):
        engine.add(_stat(f"{2019 + m // 12}-{m % 12 + 1:02d}", v))
    engine.finish(close_last=True)
    return {a.period: tuple(a.detectors) for a in engine.drain() if a.detectors}


def test_a_peak_every_fourth_quarter_does_not_alert_once_two_years_have_taught_it():
    for seed in range(4):
        alerted = _alerts(_q4_lane(seed=seed))
        late = sorted(p for p in alerted if p >= "2022-01")
        assert late == [], f"seed {seed}: a Q4 that came every year alerted in its fourth or fifth year: {late}"


def test_a_surge_outside_the_peak_season_still_alerts():
    """Monthly statistics need two suspicious months unless one is overwhelming: June and July
    2022 at x3, as high as the lane's Q4, three times an ordinary summer month."""
    values = _q4_lane()
    for m in (12 * 3 + 5, 12 * 3 + 6):
        values[m] *= 3.0
    alerted = _alerts(values)
    assert "2022-07" in alerted and "seasonal_surge" in alerted["2022-07"], alerted


def test_a_surge_on_top_of_the_peak_still_alerts():
    """October and November 2022 at x9 the lane's ordinary month: three times its usual Q4."""
    values = _q4_lane()
    for m in (12 * 3 + 9, 12 * 3 + 10):
        values[m] *= 3.0
    alerted = _alerts(values)
    assert "2022-11" in alerted and "seasonal_surge" in alerted["2022-11"], alerted


def test_one_year_of_a_peak_is_not_a_season():
    """The month's peak in one past year only (a surge then) teaches nothing: the next year's
    same month is judged against the lane's level."""
    rng = np.random.default_rng(1)
    history = list(100_000.0 * rng.lognormal(0, 0.1, 36))
    history[-12] *= 4.0  # the same month a year ago was a surge
    w = window_for([history], value=[400_000.0], count=[NAN])
    v = AlertPolicy(surge=SurgeParams(learn_season=True)).decide(w)
    profile, _ = season_profile(np.array([history]), **PROFILE)
    assert np.exp(profile[0, 0]) < 1.1, "one year's surge is no season"
    assert v.surge.candidate[0] and v.surge.ratio[0] > 2.5


def test_two_years_that_disagree_teach_nothing():
    year_up = [1.0] * 9 + [3.0] * 3
    year_down = [1.0] * 9 + [0.4] * 3
    x = np.array([[NAN] * 12 + year_up + year_down])
    assert not season_profile(x, **PROFILE)[0].any()


def test_a_sparse_lane_learns_no_season():
    """A lane that ships in a third of its months: which months they were is chance."""
    rng = np.random.default_rng(2)
    years = [[0.0] * 8 + [float(rng.uniform(5e4, 9e4)), 0.0, float(rng.uniform(5e4, 9e4)), 0.0] for _ in range(3)]
    profile, learned = season_profile(np.array([sum(years, [])]), **PROFILE)
    assert not profile.any() and not learned.any()


def test_a_case_on_a_seasonal_lane_is_judged_against_the_months_season():
    """A case opened by a surge in the quiet months closes when the lane is back to its usual
    year: its Q4 peak at x3 does not keep it open."""
    values = _q4_lane(seed=3)
    for m in (12 * 3 + 4, 12 * 3 + 5):  # May and June 2022 at x6
        values[m] *= 6.0
    engine = Engine(LEARN)
    for m, v in enumerate(values):
        engine.add(_stat(f"{2019 + m // 12}-{m % 12 + 1:02d}", v))
    engine.finish(close_last=True)
    records = [a for a in engine.drain() if "2022-05" <= a.period <= "2022-12"]
    events = [(a.period, a.case_event) for a in records]
    assert events[0] in (("2022-05", "opened"), ("2022-05", "reopened")), events
    assert events[-1] == ("2022-09", "closed"), f"the 2022 Q4 peak kept or reopened the case: {events}"


@settings(max_examples=40, deadline=None)
@given(
    peak=st.floats(2.0, 3.5),
    noise=st.floats(0.02, 0.15),
    level=st.floats(1e3, 1e8),
    seed=st.integers(0, 2**16),
)
def test_a_recurring_peak_is_learned_and_its_months_expect_it(peak, noise, level, seed):
    """Three years of the same peak, clear of the noise: the peak months' factor is above 1 and no larger than the
    peak against the year's median (quiet) month; the factor is the same in any currency (scale invariance)."""
    rng = np.random.default_rng(seed)
    base = np.where(np.isin(np.arange(36) % 12, Q4), peak, 1.0) * rng.lognormal(0, noise, 36)
    f = season_profile(level * base[None, :], **PROFILE)[0][0]
    g = season_profile(3.7 * level * base[None, :], **PROFILE)[0][0]
    np.testing.assert_allclose(f, g, atol=1e-9)
    assert np.all(np.exp(f[list(Q4)]) > 1.0)
    assert np.all(np.exp(f[list(Q4)]) <= peak * np.exp(3 * noise) + 1e-9)
    assert np.all(np.abs(f) <= np.log(PROFILE["max_factor"]) + 1e-12)


@settings(max_examples=40, deadline=None)
@given(
    history=st.lists(st.one_of(st.just(0.0), st.floats(1.0, 1e7)), min_size=36, max_size=36),
    known=st.integers(0, 36),
)
def test_the_profile_is_finite_bounded_and_needs_two_years(history, known):
    x = np.array([[NAN] * (36 - known) + history[36 - known:]])
    f, _ = season_profile(x, **PROFILE)
    assert np.isfinite(f).all() and np.all(np.abs(f) <= np.log(4.0) + 1e-12)
    if known < 12 + 10:
        assert not f.any(), "fewer than two years (of at least 10 known months each) teach no season"
    w = window_for([x[0].tolist()], value=[1e5], count=[NAN])
    s = AlertPolicy(surge=SurgeParams(learn_season=True)).decide(w).surge
    assert np.isfinite(s.season).all() and s.season[0] > 0
