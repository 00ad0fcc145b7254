"""The sanctions calendar: its data, the look-up, the alert fields and the confidence step."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from importlib import resources

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transitwatch.detectors import severity as grading
from transitwatch.detectors.errors import ConfigError, ReferenceDataError
from transitwatch.detectors.reference import chpl, hs6_codes
from transitwatch.detectors.sanctions import (
    FILE,
    NO_BAN,
    Measure,
    SanctionsCalendar,
    SanctionsParams,
    evidence,
    month_index,
    months_since,
    parse,
    sanctions_calendar,
)
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.replay import replay

TEXT = resources.files("transitwatch.detectors.data").joinpath(FILE).read_text("utf-8")


def test_every_row_is_valid_and_every_code_is_an_hs6_or_a_prefix_of_some():
    version, rows = parse(TEXT)
    assert version.startswith("sanctions_calendar version 1")
    known = hs6_codes()
    prefixes = {code[:4] for code in known} | {code[:2] for code in known}
    assert len(rows) > 1500
    for m in rows:
        assert (m.hs_code in known) if len(m.hs_code) == 6 else (m.hs_code in prefixes), m
        assert m.published <= m.applies_from <= m.latest_from
        assert dt.date(2022, 2, 25) <= m.published <= dt.date(2024, 12, 31)
        assert m.source_url.startswith("https://")
        assert m.precision in ("heading", "chapter", "default", "assumed", "code", "heading, mirror assumed")


def test_every_chpl_code_is_banned_for_russia_and_carries_its_tier():
    cal = sanctions_calendar()
    for code, goods in chpl().items():
        ban = cal.ban(code, ("RU",))
        assert ban is not None and ban.kind == "export_ban", code
        assert cal.priority(code, ("RU",)).measure == f"CHPL tier {goods.tier}"
    # the codes of the EU's October-2022 list are banned by then; the others are dated later
    assert cal.ban("854231", ("RU",)).applies_from == dt.date(2022, 2, 26)
    assert cal.ban("850440", ("RU",)).applies_from == dt.date(2023, 2, 26)
    assert cal.ban("850440", ("RU",)).latest_from == dt.date(2024, 2, 23)


@pytest.mark.parametrize(("line", "change", "message"), [
    (3, (",2022-03-16,", ",2022-03-32,"), "applies_from .2022-03-32. is not a date"),
    (3, ("010121,RU", "01012,RU"), "hs_code '01012'"),
    (3, ("010121,RU", "010121,UA"), "destination 'UA'"),
    (3, ("export_ban", "export ban"), "kind 'export ban'"),
    (3, ("2022-03-15,2022-03-16", "2022-03-17,2022-03-16"), "published <= applies_from"),
])
def test_a_bad_row_is_an_explicit_error_naming_its_line(line, change, message):
    lines = TEXT.splitlines(keepends=True)
    lines[line - 1] = lines[line - 1].replace(*change, 1)
    with pytest.raises(ReferenceDataError, match=message) as info:
        parse("".join(lines))
    assert info.value.line == line and isinstance(info.value, ValueError)


def test_a_file_without_its_version_line_is_an_error():
    with pytest.raises(ReferenceDataError, match="version line"):
        parse(TEXT.partition("\n")[2])


def _row(code: str, dest: str, applies: str, kind: str = "export_ban") -> Measure:
    day = dt.date.fromisoformat(applies)
    return Measure(hs_code=code, destination=dest, kind=kind, measure=f"m {code}", package="p", legal_act="a",
                   published=day, applies_from=day, latest_from=day, precision="code", source_url="https://x",
                   basis="test")


def test_lookup_takes_the_earliest_of_the_code_its_heading_and_chapter_over_the_destinations():
    cal = SanctionsCalendar([_row("8542", "RU", "2022-04-09"), _row("854231", "RU", "2022-06-04"),
                             _row("854231", "BY", "2022-03-03"), _row("85", "BY", "2023-08-04"),
                             _row("854232", "RU", "2022-01-01", kind="priority_list")])
    assert cal.ban("854231", ("RU",)).hs_code == "8542"  # the heading's row is earlier
    assert cal.ban("854231", ("RU", "BY")).destination == "BY"
    assert cal.ban("854232", ("RU",)).hs_code == "8542"  # a priority row is not a ban
    assert cal.ban("851762", ("BY",)).hs_code == "85"
    assert cal.ban("851762", ("RU",)) is None
    assert cal.ban_months(["854231", "851762", "010121"], ("RU",)).tolist() == [
        month_index(dt.date(2022, 4, 9)), NO_BAN, NO_BAN]


dates = st.dates(dt.date(1990, 1, 1), dt.date(2060, 12, 31))


@given(onset=dates, ban=dates)
def test_months_since_ban_is_whole_calendar_months_from_the_bans_month(onset, ban):
    since = months_since(month_index(onset), month_index(ban))
    assert since == (onset.year - ban.year) * 12 + onset.month - ban.month
    assert (since > 0) == ((onset.year, onset.month) > (ban.year, ban.month))
    lo, hi = 1, 6
    hit = evidence(np.array([month_index(onset)]), np.array([month_index(ban)]), SanctionsParams())[0]
    assert bool(hit) == (lo <= since <= hi)


@given(lo=st.integers(0, 36), width=st.integers(0, 36), since=st.integers(-60, 60))
def test_evidence_is_the_closed_window_of_months_and_never_without_a_ban(lo, width, since):
    hi = min(lo + width, 36)
    params = SanctionsParams(evidence_months=(lo, hi))
    ban = month_index(dt.date(2022, 2, 26))
    assert bool(evidence(np.array([ban + since]), np.array([ban]), params)[0]) == (lo <= since <= hi)
    assert not evidence(np.array([ban + since]), np.array([NO_BAN]), params)[0]


@pytest.mark.parametrize("bad", ['enabled = 1', 'evidence_months = [6, 1]', 'evidence_months = [1]',
                                 'evidence_months = [-1, 6]', 'evidence_months = [1, 40]'])
def test_bad_sanctions_settings_fail_at_start_up(bad):
    with pytest.raises(ConfigError):
        WatchConfig.from_toml(f"[sanctions]\n{bad}\n")


def test_sanctions_settings_are_read_from_the_config():
    p = WatchConfig.from_toml("[sanctions]\nenabled = false\nevidence_months = [0, 3]\n").params["sanctions"]
    assert p == SanctionsParams(enabled=False, evidence_months=(0, 3))
    assert WatchConfig.default().params["sanctions"] == SanctionsParams()


@given(c=st.lists(st.integers(0, 3), min_size=1, max_size=20), data=st.data())
@settings(max_examples=300)
def test_the_step_is_one_grade_at_most_and_never_makes_very_high_or_critical(c, data):
    conf = np.array(c)
    ev = np.array(data.draw(st.lists(st.booleans(), min_size=len(c), max_size=len(c))))
    mat = np.array(data.draw(st.lists(st.integers(0, 3), min_size=len(c), max_size=len(c))))
    up = grading.sanctions_step(conf, ev)
    assert np.all((up - conf >= 0) & (up - conf <= 1))
    assert np.all(up[~ev] == conf[~ev])
    assert np.all((up == 3) == (conf == 3))
    crit = grading.severity(up, mat) == 3
    assert np.all(grading.severity(conf, mat)[crit] == 3)  # critical only where it already was


def _declarations(path, *, hs_code: str, surge_from: str):
    """A noisy DE>KG lane from 2019-01 to 2022-12, with three times the declarations from ``surge_from``:
    a surge strong enough to alert but not, on its own, with high confidence."""
    rng = np.random.default_rng(7)
    lines, i = [], 0
    for m in range(48):
        period = f"{2019 + m // 12}-{m % 12 + 1:02d}"
        n = 8 * (3 if period >= surge_from else 1)
        for d in range(n):
            i += 1
            lines.append(json.dumps({"declaration_id": f"d{i}", "date": f"{period}-{d % 27 + 1:02d}",
                                     "reporter": "DE", "partner": "KG", "hs_code": hs_code,
                                     "value": round(float(20_000 * rng.lognormal(0, 0.6)), 2),
                                     "currency": "USD"}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run(path, toml: str, *, watch: str = ""):
    base = '[watch]\nreporters = ["DE"]\nhubs = ["KG"]\nhs6 = ["854231", "853400"]\n' + watch
    out = replay([path], config=WatchConfig.from_toml(base + toml), final_month="closed",
                 keep_snapshots=False, today=dt.date(2024, 1, 1))
    return [a.to_dict() for a in out.alerts]


def test_alerts_carry_the_ban_and_a_case_opening_soon_after_it_gains_one_grade_only(tmp_path):
    path = _declarations(tmp_path / "in.jsonl", hs_code="85423190", surge_from="2022-05")
    on, off = _run(path, ""), _run(path, "[sanctions]\nenabled = false\n")
    assert on, "the x3 surge alerts"
    # the same records: the step changes confidence and severity, never what alerts or which cases
    strip = ("confidence", "severity", "case_severity", "evidence", "explanation", "case_status", "case_event")
    assert [{k: v for k, v in a.items() if k not in strip} for a in on] == \
           [{k: v for k, v in a.items() if k not in strip} for a in off]
    first = on[0]
    assert first["case_onset"] == "2022-05" and first["period"] == "2022-05"
    assert first["banned_since"] == "2022-02-26"
    assert first["banned_by"].startswith("EU 833/2014 Annex VII (advanced technology), 2nd package")
    assert first["months_since_ban"] == 3
    assert "banned for export to Russian Federation from 2022-02-26" in first["explanation"]
    assert "the case opened 3 months after the ban" in first["explanation"]
    from transitwatch.detectors.severity import CONFIDENCES
    for a, b in zip(on, off):
        assert a["months_since_ban"] == months_since(
            int(a["case_onset"][:4]) * 12 + int(a["case_onset"][5:]) - 1, month_index(dt.date(2022, 2, 26)))
        assert a["evidence"]["sanctions_evidence"] == (bool(a["detectors"]) and 1 <= a["months_since_ban"] <= 6)
        assert not b["evidence"]["sanctions_evidence"]
        step = CONFIDENCES.index(a["confidence"]) - CONFIDENCES.index(b["confidence"])
        lifted = a["evidence"]["sanctions_evidence"] and b["confidence"] in ("low", "medium")
        assert step == (1 if lifted else 0), (a["period"], a["confidence"], b["confidence"])
        assert (a["severity"] == "critical") == (b["severity"] == "critical")
    # the opening month: low without the calendar, medium with it, and its severity one step up
    assert (first["confidence"], off[0]["confidence"]) == ("medium", "low")
    assert (first["severity"], off[0]["severity"]) == ("high", "medium")
    assert first["evidence"]["sanctions_evidence"]


def test_a_case_long_after_the_ban_or_goods_outside_the_calendar_gain_nothing(tmp_path):
    late = _run(_declarations(tmp_path / "late.jsonl", hs_code="85423190", surge_from="2022-11"), "")
    assert late and late[0]["months_since_ban"] >= 9  # the case opens in 2022-11 or 2022-12
    assert not any(a["evidence"]["sanctions_evidence"] for a in late)
    # no destination: no ban applies
    none = _run(_declarations(tmp_path / "none.jsonl", hs_code="85423190", surge_from="2022-05"), "",
                watch="destinations = []\n")
    assert none and all(a["banned_since"] is None and a["months_since_ban"] is None for a in none)
    assert not any(a["evidence"]["sanctions_evidence"] for a in none)
    assert "banned for export" not in none[0]["explanation"]


def test_params_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SanctionsParams().enabled = False  # type: ignore[misc]
