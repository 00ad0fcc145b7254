"""Watching any lane (issue 14, item 6): hubs as reporters, destinations that alert on their
rises, "*" for every reporter or partner, diversion whatever is watched, and HS codes that
must be real HS6 subheadings."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import batch
from transitwatch.detectors.contract import parse_mapping
from transitwatch.detectors.engine import Engine, route_reason
from transitwatch.detectors.errors import ConfigError
from transitwatch.detectors.reference import chpl, hs6_codes, transit_countries
from transitwatch.detectors.watch import WatchConfig


def _cfg(watch: str) -> WatchConfig:
    return WatchConfig.from_toml("[watch]\n" + watch)


def _stat(period, value, reporter="DE", partner="KG", hs="85423190"):
    return parse_mapping({"period": period, "reporter": reporter, "partner": partner, "flow": "export",
                          "hs_code": hs, "value": value, "currency": "USD"})


def _months(start_year=2019, n=42):
    return [f"{start_year + i // 12}-{i % 12 + 1:02d}" for i in range(n)]


def _run(cfg: WatchConfig, records) -> list:
    e = Engine(cfg)
    for r in records:
        e.add(r)
    e.finish(close_last=True)
    return e.drain()


def _surge(reporter, partner, *, seed=3, up=6.0, level=100_000.0):
    """A steady lane for three years, then six months at ``up`` times its level."""
    rng = np.random.default_rng(seed)
    return [_stat(p, level * rng.lognormal(0, 0.1) * (up if 36 <= i < 42 else 1), reporter, partner)
            for i, p in enumerate(_months())]


# --- the configuration ------------------------------------------------------------------------


def test_the_defaults_watch_hub_lanes_for_rises_and_destination_lanes_for_diversion():
    cfg = WatchConfig.default()
    assert cfg.role("DE", "KG") == (True, False)
    assert cfg.role("DE", "RU") == (False, True) and cfg.role("AM", "RU") == (False, True)
    assert cfg.role("DE", "FR") is None
    assert "BY" not in cfg.hubs and not cfg.lanes and not cfg.every_partner


def test_star_means_every_reporter_or_every_partner():
    assert _cfg('reporters = ["*"]').reporters == frozenset()
    every = _cfg('hubs = ["*"]')
    assert every.role("DE", "FR") == (True, False) and every.role("US", "JP") == (True, False)
    assert every.role("DE", "RU") == (False, True), "'*' is every partner but the destinations"
    assert route_reason(every, "DE", "FR", "export", "854231", "USD") is None


def test_a_destination_named_as_a_hub_alerts_and_still_feeds_diversion():
    cfg = _cfg('hubs = ["transit", "BY"]')
    assert cfg.role("DE", "BY") == (True, True)
    assert cfg.role("DE", "RU") == (False, True)
    assert _cfg('hubs = ["transit"]').role("DE", "BY") == (False, True), "'transit' leaves the destinations out"


def test_lanes_name_hubs_as_reporters_whatever_reporters_says():
    cfg = _cfg('reporters = ["DE"]\nlanes = ["AM>RU"]')
    assert cfg.role("AM", "RU") == (True, True), "Armenia's exports to Russia alert and feed diversion"
    assert cfg.role("KZ", "RU") is None and cfg.role("AM", "KG") is None
    assert cfg.role("DE", "RU") == (False, True)
    assert route_reason(cfg, "AM", "RU", "export", "854231", "USD") is None
    assert route_reason(cfg, "KZ", "RU", "export", "854231", "USD") == "not watched: reporter"
    assert route_reason(cfg, "AM", "FR", "export", "854231", "USD") == "not watched: partner"


def test_lanes_expand_transit_and_star_on_either_side():
    cfg = _cfg('lanes = ["transit>RU", "*>BY", "AM>*"]')
    assert {("KZ", "RU"), ("AM", "RU"), ("BY", "RU")} <= cfg.lanes
    assert cfg.role("KZ", "RU") == (True, True) and cfg.role("DE", "RU") == (False, True)
    assert cfg.role("DE", "BY") == (True, True)
    assert cfg.role("AM", "FR") == (True, False) and cfg.role("KZ", "FR") is None
    assert cfg.watches_partner("FR") and not _cfg('lanes = ["AM>RU"]').watches_partner("FR")
    assert sorted(cfg.describe()["lanes"])[:1] == ["*>BY"]


@pytest.mark.parametrize("watch, says", [
    ('lanes = ["AMRU"]', '"REPORTER>PARTNER"'),
    ('lanes = ["AM>RU>BY"]', '"REPORTER>PARTNER"'),
    ('lanes = ["AM>XX"]', "'AM>XX'"),
    ("lanes = [5]", '"REPORTER>PARTNER"'),
    ('lanes = "AM>RU"', "watch.lanes must be a list"),
    ('hubs = ["XX"]', "'XX' is not one"),
    ('destinations = ["*"]', "watch.destinations must be a list of ISO 3166-1 alpha-2 codes"),
    ('reporters = ["Germany"]', "'Germany' is not one"),
    ('hs6 = ["999999"]', 'hs6_unlisted = ["999999"]'),
    ('hs6 = ["854299"]', "not an HS6 subheading of HS 2017 or HS 2022"),
    ('hs6 = ["8542"]', "must be 6 digits"),
    ('hs6 = ["999999"]\nhs6_unlisted = ["99999"]', "watch.hs6_unlisted entry '99999' must be 6 digits"),
])
def test_configuration_errors_say_what_to_do(watch, says):
    with pytest.raises(ConfigError) as err:
        _cfg(watch)
    assert says in str(err.value)


def test_an_aggregate_code_is_watched_when_listed_as_unlisted():
    cfg = _cfg('hs6 = ["chpl", "999999"]\nhs6_unlisted = ["999999"]')
    assert "999999" in cfg.hs6 and len(cfg.hs6) == 51
    assert route_reason(cfg, "DE", "KG", "export", "999999", "USD") is None
    # unlisted alone does not watch a code; an unknown code in the input is simply not watched
    assert route_reason(_cfg('hs6_unlisted = ["999999"]'), "DE", "KG", "export", "999999", "USD") == "not watched: hs6"


def test_codes_of_both_editions_are_real_and_eurostat_aliases_read_as_iso():
    codes = hs6_codes()
    assert set(chpl()) <= set(codes), "every CHPL code is an HS 2017 or HS 2022 subheading"
    assert 5_700 < len(codes) < 5_800 and "999999" not in codes
    assert _cfg('hs6 = ["851712", "851713"]').hs6 == {"851712", "851713"}  # HS 2017 only, HS 2022 only
    assert _cfg('reporters = ["EL", "uk"]').reporters == {"GR", "GB"}
    assert set(transit_countries()) - {"BY"} == set(WatchConfig.default().hubs)


# --- what the engine does with them -----------------------------------------------------------


def test_a_hub_exporting_to_russia_alerts_on_its_surge_when_named_as_a_lane():
    records = _surge("AM", "RU")
    assert _run(WatchConfig.default(), records) == [], "by default a lane into Russia only feeds diversion"
    alerts = _run(_cfg('lanes = ["AM>RU"]'), records)
    assert alerts and {a.series_id for a in alerts} == {"AM>RU export 854231"}
    assert min(a.period for a in alerts) == "2022-01"
    assert "seasonal_surge" in alerts[0].detectors
    assert "Armenia's exports to Russia" in alerts[0].explanation


def test_belarus_alerts_on_its_rise_when_named_as_a_hub():
    records = _surge("DE", "BY")
    assert _run(WatchConfig.default(), records) == []
    family = "\n[policy]\nfamily_size = 100000"  # the same family: the watches differ in size
    alerts = _run(_cfg('hubs = ["transit", "BY"]' + family), records)
    assert alerts and {a.partner for a in alerts} == {"BY"} and min(a.period for a in alerts) == "2022-01"
    assert _run(_cfg('lanes = ["*>BY"]' + family), records) == alerts


def _diverted(hub="KZ", reporter="DE"):
    """Russia collapses to a tenth from 2022-01 while the hub lane rises 2.2 times."""
    rng = np.random.default_rng(5)
    out = []
    for i, p in enumerate(_months()):
        post = i >= 36
        out.append(_stat(p, 1_000_000 * rng.lognormal(0, 0.05) * (0.1 if post else 1), reporter, "RU"))
        out.append(_stat(p, 40_000 * rng.lognormal(0, 0.05) * (2.2 if post else 1), reporter, hub))
    return out


@pytest.mark.parametrize("watch", [
    "",  # the defaults
    'lanes = ["transit>RU"]',  # the hubs' own exports to Russia alert too
    'reporters = ["DE", "AM", "KZ"]\nlanes = ["AM>RU", "KZ>RU"]',
    'hubs = ["*"]',
    'hubs = ["transit", "BY"]\nlanes = ["*>RU"]',
])
def test_diversion_keeps_working_whatever_is_watched(watch):
    alerts = _run(_cfg(watch), _diverted())
    div = [a for a in alerts if "diversion" in a.detectors]
    assert div and {a.partner for a in div} == {"KZ"}
    assert min(a.period for a in div) <= "2022-04"
    assert "fell to" in div[0].explanation


def test_diversion_from_a_hub_as_reporter():
    """Kazakhstan's exports to Russia collapse while its exports to Kyrgyzstan rise: with
    every reporter watched (the default), the hub's own lanes carry diversion too."""
    alerts = _run(_cfg('lanes = ["KZ>RU"]'), _diverted(hub="KG", reporter="KZ"))
    div = [a for a in alerts if "diversion" in a.detectors]
    assert div and {a.series_id for a in div} == {"KZ>KG export 854231"}


def test_belarus_rising_while_russia_collapses_is_diversion_when_belarus_alerts():
    records = _diverted(hub="BY")
    assert not [a for a in _run(WatchConfig.default(), records) if a.partner == "BY"]
    div = [a for a in _run(_cfg('hubs = ["transit", "BY"]'), records) if "diversion" in a.detectors]
    assert div and {a.partner for a in div} == {"BY"}


@pytest.mark.parametrize("watch", ['hubs = ["*"]\nlanes = ["AM>RU"]',
                                   'hubs = ["transit", "BY"]\nlanes = ["transit>*"]'])
def test_batch_equals_incremental_with_any_lane_watched(watch):
    cfg = _cfg(watch)
    records = [*_surge("AM", "RU"), *_surge("DE", "FR", seed=4), *_surge("DE", "BY", seed=6),
               *_diverted(), *_surge("US", "CN", seed=7, up=1.0)]
    records.sort(key=lambda r: r.month)
    incremental = sorted((a.alert_id, a.detectors, a.severity, a.score) for a in _run(cfg, records))
    frame = batch.monthly_cells(batch.records_frame(records), cfg)
    vectorized = sorted((a.alert_id, a.detectors, a.severity, a.score) for a in batch.detect(frame, cfg))
    assert incremental and incremental == vectorized
