"""The hostile inputs of issue 13 through the command line, as an outside user runs it
(``benchmarks.robustness`` builds and runs them): each in its own process with a deadline, so a
crash (traceback, signal) or a hang fails the test. Valid lines among hostile ones give the very
alerts the valid lines give alone, and every line read is accepted or rejected with its reason."""

from __future__ import annotations

import pytest

from benchmarks.robustness import cases, check, clean_lines, failing, run_failing, run_replay, spread

HUGE_MIB = 96


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """3,000 valid declaration lines (two years, a few surges) and their alerts."""
    folder = tmp_path_factory.mktemp("hostile")
    lines = clean_lines(folder)
    path = folder / "clean.jsonl"
    path.write_bytes(b"".join(lines))
    base = run_replay([str(path)], folder)
    assert base.code == 0, base.stderr
    assert base.alerts, "the clean file must alert, or equality below proves little"
    return folder, lines, base


@pytest.mark.parametrize("case", cases(HUGE_MIB), ids=lambda c: c.name)
def test_hostile_input_is_rejected_line_by_line_and_changes_no_alert(clean, case):
    folder, lines, base = clean
    outcome, problems = check(case, folder, lines, base.alerts)
    assert not problems, problems
    if case.name == "quote":
        # the row with the quote is rejected alone, at its own line number (the header is line 1)
        rows = len(lines) + 600
        assert outcome.reject_lines == [rows // 3 + 2] or outcome.reject_lines == [rows // 3 + 1]
        assert outcome.summary["lines read"] == f"{rows:,}"
    if case.name == "huge":
        grown = outcome.maxrss_mib - base.maxrss_mib
        assert grown < HUGE_MIB / 3, f"a {HUGE_MIB} MiB line grew the peak memory by {grown:.0f} MiB"


def test_spread_keeps_every_line(clean):
    _, lines, _ = clean
    out = spread(lines[:10], [b"a", b"b\n", b"c"]).splitlines()
    assert len(out) == 13 and out.count(b"a") == out.count(b"b") == out.count(b"c") == 1
    assert [line for line in out if line not in (b"a", b"b", b"c")] == [line.rstrip(b"\n") for line in lines[:10]]


@pytest.mark.parametrize("case", failing(), ids=lambda c: c.sent)
def test_input_a_run_cannot_use_is_an_exit_code_and_one_clear_line(clean, case):
    folder, lines, _ = clean
    code, _, said, problems = run_failing(case, folder, lines)
    assert not problems, (problems, said)


def test_the_summary_counts_cases_by_where_they_stand():
    from transitwatch.detectors.alerts import Alert
    from transitwatch.streams.replay import ReplayResult

    def rec(case, period, status, severity):
        return Alert(alert_id=f"tw-{case}-{period}", series_id="DE>KG export 854231", reporter="DE", partner="KG",
                     flow="export", hs6="854231", hs_description=None, chpl_tier=None, period=period, detectors=(),
                     score=0.0, severity="low", observed_value=1.0, baseline_value=None, observed_count=None,
                     baseline_count=None, ratio=None, p_value=None, currency="USD", top_exporters=(),
                     top_consignees=(), corroborating_reporters=(), early=False, as_of=f"{period}-28", explanation="",
                     case_id=case, case_status=status, case_severity=severity)

    result = ReplayResult(alerts=[rec("a", "2022-01", "open", "medium"), rec("a", "2022-04", "closed", "high"),
                                  rec("b", "2022-03", "open", "low")])
    assert result.case_counts() == {"open": 1, "closed": 1, "reached high": 1, "reached low": 1}
    assert ReplayResult(alerts=[]).case_counts() == 0
