"""Issue 13: one bad line never stops a replay, and nothing is lost silently.

Hostile lines (random bytes, deep nesting, huge numbers, dates and periods outside the run's
months, stray quotes, CR and CRLF, NUL bytes, byte-order marks, lines over the size limit) are
mixed into valid ones. Whatever the mix: no exception but the documented ones, every non-blank
physical line is accepted or rejected exactly once, every reader (Arrow, orjson, line by line)
rejects the same lines for the same reasons, and the valid lines give the alerts they give alone.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import io
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from functools import cache
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import transitwatch.streams.replay as replay_module
from benchmarks.scenarios.declarations import generate
from transitwatch.detectors.columnar import ColumnarReplay
from transitwatch.detectors.errors import RejectError
from transitwatch.detectors.frame import FIELDS
from transitwatch.detectors.limits import InputLimits
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.files import InputFileError, check_inputs, iter_messages, iter_records
from transitwatch.streams.replay import read_blocks, replay

TODAY = dt.date(2026, 12, 6)
LIMITS = InputLimits(max_line_bytes=1024)  # small: hypothesis can afford lines over it
CONFIG = dataclasses.replace(WatchConfig.default(), input=LIMITS)
DOMAIN = LIMITS.domain(TODAY)
ROWS, _ = generate(600, 4)
VALID = [orjson.dumps(r) for r in ROWS]
BOM = b"\xef\xbb\xbf"
ROOT = Path(__file__).parents[2]


def _record(i: int, **change) -> bytes:
    """A copy of a valid line under a new declaration id, changed."""
    return orjson.dumps(dict(ROWS[i % len(ROWS)], declaration_id=f"H-{i}", **change))


def _with_value(text: bytes) -> bytes:
    return _record(1).replace(b'"value":', b'"value":' + text + b', "was":', 1)


# --- hostile JSON lines (none of them can be a record the run accepts) -----------------------------

_NO_NEWLINE = st.binary(max_size=60).map(lambda b: b.replace(b"\n", b""))
HOSTILE_JSON = st.one_of(
    _NO_NEWLINE,
    st.text(alphabet='{}[]":,\\ \r\t\x00ab1', max_size=40).map(str.encode),
    st.integers(33, 3000).map(lambda k: b'{"declaration_id": "deep", "x": ' + b"[" * k + b"]" * k + b"}"),
    st.integers(33, 200).map(lambda k: b'{"a": ' * k + b"1" + b"}" * k),
    st.sampled_from([b"1e400", b"-1e400", b"9" * 400, b"-3", b"NaN", b"Infinity", b'"1e999"']).map(_with_value),
    st.builds(lambda i, d: _record(i, date=d), st.integers(0, 599),
              st.sampled_from(["0001-01-01", "9999-12-31", "1989-12-31", "2028-01-01", "0000-01-01"])),
    st.builds(lambda i, p: orjson.dumps({"period": p, "reporter": "DE", "partner": "KZ", "hs_code": "854231",
                                         "value": 5 + i}),
              st.integers(0, 99), st.sampled_from(["0000-01", "9999-12", "1989-12", "2028-01"])),
    st.integers(1025, 6000).map(lambda n: _record(2, exporter="x" * n)),
    st.integers(0, 599).map(lambda i: _record(i).replace(b'"declaration_id":"', b'"declaration_id":"\x00', 1)),
    st.integers(0, 599).map(lambda i: BOM + VALID[i]),  # a byte-order mark not at the start of the file
    st.integers(0, 599).map(lambda i: VALID[i] + b"\r" + VALID[i]),  # two records on one line
    st.integers(0, 599).map(lambda i: VALID[i][: len(VALID[i]) // 2]),  # cut short
)
BLANK = st.sampled_from([b"", b"   ", b"\t", b"\r"])


class Mixed:
    """A file of valid and hostile lines; shown by what was mixed in (the whole file is too long)."""

    def __init__(self, data: bytes, mixed: list[tuple[int, bytes]], valid_copies: int = 0) -> None:
        self.data = data
        self.mixed = mixed
        self.valid_copies = valid_copies  # hostile lines that are valid after all

    def __repr__(self) -> str:
        shown = [(at, line[:80] + (b"..." if len(line) > 80 else b"")) for at, line in self.mixed]
        return f"Mixed(start={self.data[:4]!r}, end={self.data[-4:]!r}, inserted={shown})"


@st.composite
def jsonl_files(draw) -> Mixed:
    lines = list(VALID)
    extra = draw(st.lists(st.one_of(HOSTILE_JSON, BLANK), min_size=1, max_size=8))
    mixed = []
    for line in extra:
        at = draw(st.integers(0, len(lines)))
        lines.insert(at, line)
        mixed.append((at, line))
    crlf = draw(st.sets(st.integers(0, len(lines) - 1), max_size=5))
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    body = b"".join(line + (b"\r\n" if i in crlf else ending) for i, line in enumerate(lines))
    if not draw(st.booleans()):
        body = body.rstrip(b"\r\n")
    if draw(st.booleans()):
        return Mixed(BOM + body, mixed)
    # A copy of a valid line behind a byte-order mark is a reject, except at the start of the file.
    return Mixed(body, mixed, int(lines[0].startswith(BOM) and lines[0][len(BOM) :] in VALID))


def physical_jsonl(data: bytes) -> int:
    """Non-blank lines of a JSON Lines file, counted independently of the readers."""
    return sum(1 for line in data.removeprefix(BOM).split(b"\n") if line.strip())


def _blocks(path: Path, *, arrow: bool, chunk_bytes: int):
    tries = replay_module.ARROW_TRIES
    replay_module.ARROW_TRIES = 3 if arrow else 0
    try:
        run = ColumnarReplay(CONFIG)
        rejected = []
        accepted = read_blocks([path], run, lambda line, e: rejected.append((line.number, e.key, line.raw)),
                               chunk_bytes=chunk_bytes, limits=LIMITS, domain=DOMAIN)
        out = run.run(final_month="closed")
    finally:
        replay_module.ARROW_TRIES = tries
    return accepted, rejected, [a.to_dict() for a in out.engine.drain()]


@cache
def _valid_alerts() -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "valid.jsonl"
        path.write_bytes(b"\n".join(VALID) + b"\n")
        accepted, rejected, alerts = _blocks(path, arrow=True, chunk_bytes=1 << 20)
    assert accepted == len(VALID) and not rejected and alerts, "the valid lines alone must give alerts"
    return alerts


@given(jsonl_files(), st.sampled_from([2048, 1 << 20]))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_hostile_json_lines_are_each_rejected_once_by_every_reader(mix, chunk_bytes):
    data = mix.data
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "in.jsonl"
        path.write_bytes(data)
        arrow = _blocks(path, arrow=True, chunk_bytes=chunk_bytes)
        plain = _blocks(path, arrow=False, chunk_bytes=chunk_bytes)
        by_line = [(n, r.key) for n, _, r in iter_records(path, limits=LIMITS, domain=DOMAIN)
                   if isinstance(r, RejectError)]
        per_line_total = sum(1 for _ in iter_records(path, limits=LIMITS, domain=DOMAIN))
    accepted, rejected, alerts = arrow
    assert accepted + len(rejected) == physical_jsonl(data) == per_line_total
    assert [(n, key) for n, key, _ in rejected] == by_line
    assert (plain[0], plain[1]) == (accepted, rejected)
    assert accepted == len(VALID) + mix.valid_copies
    assert alerts == plain[2] == _valid_alerts()
    assert all(len(raw) <= 2000 for _, _, raw in rejected)


# --- hostile CSV -----------------------------------------------------------------------------------

def _csv_line(row: dict) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(["" if row.get(k) is None else row.get(k) for k in FIELDS])
    return buffer.getvalue()


HEADER = ",".join(FIELDS)
VALID_CSV = [_csv_line(r) for r in ROWS]
UNQUOTED = [i for i, line in enumerate(VALID_CSV) if '"' not in line]


def _stray_quote(i: int, cell: int) -> str:
    """A valid row with no quote of its own, a quote opening one of its cells: it never closes."""
    cells = VALID_CSV[UNQUOTED[i % len(UNQUOTED)]].split(",")
    cells[cell % len(cells)] = '"' + cells[cell % len(cells)]
    return ",".join(cells)


HOSTILE_CSV = st.one_of(
    st.builds(_stray_quote, st.integers(0, 599), st.integers(0, 14)),
    st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=60),
    st.text(alphabet='",ab \x00\t', max_size=30),
    st.builds(lambda i, d: _csv_line(dict(ROWS[i], declaration_id=f"H-{i}", date=d)), st.integers(0, 599),
              st.sampled_from(["0001-01-01", "9999-12-31", "1989-12-31", "2028-01-01"])),
    st.builds(lambda p: _csv_line({"period": p, "reporter": "DE", "partner": "KZ", "hs_code": "854231",
                                   "value": 5}), st.sampled_from(["0000-01", "9999-12", "1989-12", "2028-01"])),
    st.integers(1025, 6000).map(lambda n: _csv_line(dict(ROWS[3], declaration_id="H-long", exporter="x" * n))),
    st.integers(0, 599).map(lambda i: _csv_line(dict(ROWS[i], declaration_id=f"H-{i}", date="2021-0\x001-05"))),
    st.integers(0, 599).map(lambda i: _csv_line(dict(ROWS[i], declaration_id=f"H-{i}", value="1e400"))),
)


@st.composite
def csv_files(draw) -> Mixed:
    lines = list(VALID_CSV)
    extra = draw(st.lists(st.one_of(HOSTILE_CSV, st.sampled_from(["", "  ", ",,,"])), min_size=1, max_size=8))
    mixed = []
    for line in extra:
        at = draw(st.integers(0, len(lines)))
        lines.insert(at, line)
        mixed.append((at, line.encode("utf-8", "surrogateescape")))
    ending = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    other = draw(st.sets(st.integers(0, len(lines) - 1), max_size=4))
    body = "".join(line + ("\r\n" if i in other else ending) for i, line in enumerate(lines))
    data = (HEADER + ending + body).encode("utf-8", "surrogateescape")
    return Mixed((BOM if draw(st.booleans()) else b"") + data, mixed)


def _closes(text: str) -> bool:
    """Whether a row started on this line ends on it, by csv's rules (excel dialect, not strict):
    a quote opens a quoted cell only at the start of a cell; two quotes in one stand for one."""
    quoted = start = True
    quoted = False
    i = 0
    while i < len(text):
        c = text[i]
        if quoted:
            if c == '"':
                if text[i + 1 : i + 2] == '"':
                    i += 1
                else:
                    quoted = False
        elif c == '"' and start:
            quoted = True
        start = c == "," and not quoted
        i += 1
    return not quoted


def physical_csv(data: bytes, limit: int) -> int:
    """Rows a CSV file must account for, one per physical line (no row may span lines by default):
    every line but the header, blank lines and rows whose cells are all empty."""
    text = data.removeprefix(BOM).decode("utf-8", "surrogateescape")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")[1:]
    count = 0
    for line in lines:
        if not line.strip(" \t\x0b\x0c"):
            continue
        if len(line.encode("utf-8", "surrogateescape")) <= limit and _closes(line):
            if not any(cell.strip() for cell in next(csv.reader([line]))):
                continue
        count += 1
    return count


@cache
def _valid_csv_alerts() -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "valid.csv"
        path.write_text(HEADER + "\n" + "\n".join(VALID_CSV) + "\n", encoding="utf-8")
        result = replay([path], config=CONFIG, final_month="closed", today=TODAY, keep_snapshots=False)
    assert result.accepted == len(VALID_CSV) and not result.rejected and result.alerts
    return [a.to_dict() for a in result.alerts]


@given(csv_files())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_hostile_csv_rows_are_each_rejected_once_and_never_merged(mix):
    data = mix.data
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "in.csv"
        path.write_bytes(data)
        result = replay([path], config=CONFIG, final_month="closed", today=TODAY, keep_snapshots=False)
        messages = list(iter_messages(path, LIMITS))
    assert result.lines == result.accepted + sum(result.rejected.values()) == physical_csv(data, LIMITS.max_line_bytes)
    assert result.accepted == len(VALID_CSV)
    assert [a.to_dict() for a in result.alerts] == _valid_csv_alerts()
    assert len(messages) == result.lines, "produce sends every row, or its reject, once"


# --- regressions, as measured from outside ---------------------------------------------------------

def _replay_cli(*args: str) -> tuple[int, str, str]:
    out = subprocess.run([sys.executable, "-m", "transitwatch.streams.cli", "replay", "--quiet", *args],
                         capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"})
    return out.returncode, out.stdout, out.stderr


def _decls(n: int = 3000) -> list[bytes]:
    return [orjson.dumps({"declaration_id": f"D{i}", "date": f"2024-{1 + i % 6:02d}-{1 + i % 28:02d}",
                          "reporter": "DE", "partner": "KZ", "hs_code": "854231", "value": 1000 + i})
            for i in range(n)]


@pytest.mark.parametrize("period", ["0000-01", "9999-12"])
@pytest.mark.parametrize("form", ["jsonl", "csv"])
def test_a_statistic_of_any_valid_period_is_a_reject_not_a_traceback(tmp_path, period, form):
    stat = {"period": period, "reporter": "DE", "partner": "KZ", "hs_code": "854231", "value": 5}
    path = tmp_path / f"in.{form}"
    if form == "jsonl":
        path.write_bytes(b"\n".join(_decls(50) + [orjson.dumps(stat)]) + b"\n")
    else:
        valid = "".join(f"2024-{m:02d},DE,KZ,854231,{1000 + m}\n" for m in range(1, 13))
        path.write_text("period,reporter,partner,hs_code,value\n" + valid + ",".join(map(str, stat.values())) + "\n")
    code, stdout, stderr = _replay_cli(str(path))
    assert code == 0, stderr
    assert "date_out_of_range: 1" in stdout and "Traceback" not in stderr


@pytest.mark.parametrize("date", ["9999-12-31", "0001-01-01"])
@pytest.mark.parametrize("arrow", [True, False])
def test_one_far_date_among_3000_lines_is_rejected_and_the_replay_finishes(tmp_path, date, arrow, monkeypatch):
    lines = _decls()
    lines.insert(1500, orjson.dumps({"declaration_id": "X", "date": date, "reporter": "DE", "partner": "KZ",
                                     "hs_code": "854231", "value": 1}))
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    monkeypatch.setattr(replay_module, "ARROW_TRIES", 3 if arrow else 0)
    started = time.perf_counter()
    result = replay([path], today=TODAY, keep_snapshots=False)
    assert time.perf_counter() - started < 30
    assert (result.lines, result.accepted, dict(result.rejected)) == (3001, 3000, {"date_out_of_range": 1})
    assert (result.first_month, result.last_month) == (2024 * 12, 2024 * 12 + 5)


def test_the_time_domain_follows_today_and_the_configuration(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(_decls(60)) + b"\n")  # 2024-01 to 2024-06
    assert replay([path], today=dt.date(2023, 5, 1)).rejected == Counter({"date_out_of_range": 10})  # after 2024-05
    config = WatchConfig.from_toml('[input]\nearliest = "2024-03"\nlatest = "2024-04"')
    assert replay([path], config=config).rejected == Counter({"date_out_of_range": 40})


def test_json_nested_20000_deep_is_a_reject_not_a_crash(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(_decls() + [b'{"a":' + b"[" * 20000 + b"]" * 20000 + b"}"]) + b"\n")
    code, stdout, stderr = _replay_cli(str(path))  # in a process of its own: a crash is a return code
    assert code == 0, stderr
    assert "too_deep: 1" in stdout


def test_a_stray_quote_in_csv_swallows_no_row(tmp_path):
    """3,600 rows, every sixth with a quote left open: the 3,000 valid rows are all accepted."""
    rows = ["declaration_id,date,reporter,partner,hs_code,value,exporter"]
    for i in range(3000):
        rows.append(f"D{i},2024-{1 + i % 6:02d}-{1 + i % 28:02d},DE,KZ,854231,{1000 + i},ACME")
        if i % 5 == 4:
            rows.append(f'B{i},2024-01-05,DE,KZ,854231,1,"ACME, GmbH')
    path = tmp_path / "in.csv"
    path.write_text("\n".join(rows) + "\n")
    rejects = tmp_path / "rejects.jsonl"
    result = replay([path], rejects_out=rejects, today=TODAY, keep_snapshots=False)
    assert (result.lines, result.accepted, dict(result.rejected)) == (3600, 3000, {"unclosed_quote": 600})
    written = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert [r["line"] for r in written] == [i + 2 + i // 5 + 1 for i in range(4, 3000, 5)]
    assert all("\n" not in r["raw"] and r["raw"].startswith("B") for r in written)


def test_a_quoted_cell_may_span_lines_when_allowed_and_a_stray_quote_still_merges_nothing(tmp_path):
    header = "declaration_id,date,reporter,partner,hs_code,value,exporter"
    path = tmp_path / "in.csv"
    path.write_text("\n".join([
        header,
        'D1,2024-01-05,DE,KZ,854231,10,"ACME\nGmbH"',   # a cell with a line break: one row of two lines
        'D2,2024-01-05,DE,KZ,854231,10,"ACME',          # a stray quote...
        'D3,2024-01-06,DE,KZ,854231,10,"Beta, Ltd"',    # ...that this row's quotes would close
        "D4,2024-01-07,DE,KZ,854231,10,Gamma",
    ]) + "\n")
    got = [(n, r.key if isinstance(r, RejectError) else r.declaration_id)
           for n, _, r in iter_records(path, limits=InputLimits(max_quoted_lines=3))]
    assert got == [(2, "D1"), (4, "unclosed_quote"), (5, "D3"), (6, "D4")]
    assert [(n, getattr(r, "key", None)) for n, _, r in iter_records(path)][:2] == [
        (2, "unclosed_quote"), (3, "invalid_csv_row")]


def test_csv_with_lone_cr_line_ends_is_read_row_by_row(tmp_path):
    path = tmp_path / "mac.csv"
    path.write_bytes(b"period,reporter,partner,hs_code,value\r2024-01,DE,KZ,854231,5\r2024-02,DE,KZ,854231,6\r")
    assert [(n, r.month % 12) for n, _, r in iter_records(path)] == [(2, 0), (3, 1)]


_MEMORY_CHILD = textwrap.dedent("""
    import resource, sys
    from transitwatch.streams.replay import replay
    from transitwatch.streams.files import iter_messages
    kind, warm, hostile = sys.argv[1:]
    def run(path):
        if kind == "messages":
            return sum(1 for _ in iter_messages(path))
        return replay([path], keep_snapshots=False).lines
    run(warm)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    lines = run(hostile)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(lines, (after - before) * 1024)
""")


@pytest.mark.parametrize(("kind", "name"), [("replay", "in.jsonl"), ("replay", "in.csv"), ("messages", "in.jsonl"),
                                            ("messages", "in.csv")])
def test_peak_memory_does_not_grow_with_the_size_of_one_line(tmp_path, kind, name):
    size = 64 << 20
    if name.endswith(".csv"):
        valid = ["period,reporter,partner,hs_code,value"] + [f"2024-{m:02d},DE,KZ,854231,{m}" for m in range(1, 13)]
        warm = ("\n".join(valid) + "\n").encode()
        hostile = warm + b"2024-01,DE,KZ,854231," + b"7" * size + b"\n" + warm.split(b"\n", 1)[1]
    else:
        warm = b"\n".join(_decls(2000)) + b"\n"
        hostile = warm + b'{"declaration_id": "' + b"x" * size + b'"}\n' + warm
    (tmp_path / ("warm" + name)).write_bytes(warm)
    (tmp_path / name).write_bytes(hostile)
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, kind, str(tmp_path / ("warm" + name)),
                          str(tmp_path / name)], capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    lines, growth = map(int, out.stdout.split())
    assert lines == 2 * warm.count(b"\n") + 1 - (2 if name.endswith(".csv") else 0)
    assert growth < size / 4, f"peak memory grew by {growth / 2**20:.0f} MiB for a {size >> 20} MiB line"


def test_the_rejects_file_keeps_only_the_start_of_a_long_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"declaration_id": "' + b"x" * (5 << 20) + b'"}\n' + b"\n".join(_decls(10)) + b"\n")
    rejects = tmp_path / "rejects.jsonl"
    result = replay([path], rejects_out=rejects, today=TODAY, keep_snapshots=False)
    assert (result.lines, result.accepted, dict(result.rejected)) == (11, 10, {"line_too_long": 1})
    [row] = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert row["line"] == 1 and len(row["raw"]) == 2000 and "5,242,902 bytes" in row["message"]


# --- files that cannot be read ------------------------------------------------------------------------

def test_a_gz_file_that_is_not_gzip_is_one_clear_error_before_any_work(tmp_path):
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(b"\n".join(_decls(5)))
    with pytest.raises(InputFileError, match=r"in.jsonl.gz is named .gz but is not gzip data"):
        check_inputs([path])
    code, stdout, stderr = _replay_cli(str(path))
    assert code == 2 and stdout == ""
    assert stderr.replace("\n", " ").startswith("cannot read input: ") and "Traceback" not in stderr


@pytest.mark.parametrize("damage", ["header", "body", "truncated"])
def test_damaged_gzip_is_an_input_file_error_naming_the_file(tmp_path, damage):
    data = gzip.compress(b"\n".join(_decls()))
    if damage == "header":
        data = data[:2] + b"\x63" + data[3:]  # an unknown compression method
    elif damage == "body":
        data = data[:60] + bytes(400) + data[460:]
    else:
        data = data[: len(data) // 2]
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(data)
    with pytest.raises(InputFileError, match=r"^.*in\.jsonl\.gz(:| is).*\.$") as caught:
        if damage == "header":
            check_inputs([path])
        replay([path], today=TODAY)
    assert isinstance(caught.value, OSError)
    code, _, stderr = _replay_cli(str(path))
    assert code == 2 and "cannot read input: " in stderr and "Traceback" not in stderr


def test_a_directory_or_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputFileError, match="is a directory, not a file"):
        check_inputs([tmp_path])
    with pytest.raises(InputFileError, match="is a directory, not a file"):
        replay([tmp_path])
    with pytest.raises(InputFileError, match="absent.jsonl: no such file"):
        check_inputs([tmp_path / "absent.jsonl"])


def test_an_unreadable_file_is_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(_decls(5)))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("transitwatch.streams.files.open", refuse, raising=False)
    with pytest.raises(InputFileError, match="in.jsonl: permission denied; the file must be readable"):
        check_inputs([path])
