"""Reading input files: JSON Lines and CSV, plain and gzip, line numbers and rejects."""

from __future__ import annotations

import gzip
import io
import os
import re
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transitwatch.detectors.contract import Declaration, MonthlyStat
from transitwatch.detectors.errors import RejectError
from transitwatch.detectors.limits import InputLimits
from transitwatch.streams.files import Line, LongLine, check_inputs, count_lines, detect_format, iter_lines, iter_messages

DECL = {
    "declaration_id": "DE-1",
    "date": "2024-03-05",
    "reporter": "DE",
    "partner": "KZ",
    "hs_code": "8542.31",
    "value": 12.5,
}
STAT = {"period": "2024-01", "reporter": "FR", "partner": "AM", "hs_code": "854231", "value": 3}

JSONL = b"".join(
    [
        orjson.dumps(DECL) + b"\n",
        b"\n",
        b"   \n",
        orjson.dumps(STAT) + b"\r\n",
        b"{broken\n",
        orjson.dumps({**DECL, "partner": "XX"}),  # no final newline
    ]
)

CSV = (
    "declaration_id,period,date,reporter,partner,flow,hs_code,value,currency,exporter\n"
    "DE-1,,2024-03-05,de,KZ,,8542.31,12.5,,\"ACME, GmbH\"\n"
    "\n"
    ",2024-01,,FR,AM,Re_Export,854231,3,eur,\n"
    "DE-2,,2024-03-06,DE,KZ,export,854231\n"
    "DE-3,,2024-03-07,DE,GE,export,854231,-1,,\"multi\nline\"\n"
    "DE-4,,2024-03-08,DE,AM,export,85423100,7,,\n"
)


def outcomes(path: Path, **limits) -> list[tuple[int, str]]:
    return [
        (line.number, result.key if isinstance(result, RejectError) else type(result).__name__)
        for line, result in iter_lines(path, limits=InputLimits(**limits))
    ]


def check_jsonl(path: Path) -> None:
    assert outcomes(path) == [
        (1, "Declaration"),
        (4, "MonthlyStat"),
        (5, "invalid_json"),
        (6, "unknown_country:partner"),
    ]
    lines = list(iter_lines(path))
    assert all(line.source == str(path) for line, _ in lines)
    assert lines[2][0].raw == "{broken"
    first = lines[0][1]
    assert isinstance(first, Declaration) and first.hs_code == "854231"


def test_jsonl_round_trip(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(JSONL)
    check_jsonl(path)
    assert count_lines(path) == 6


def test_gzip_detected_by_magic_not_name(tmp_path):
    plain_name = tmp_path / "in.jsonl"
    plain_name.write_bytes(gzip.compress(JSONL))
    check_jsonl(plain_name)
    named = tmp_path / "in.ndjson.gz"
    named.write_bytes(gzip.compress(JSONL))
    check_jsonl(named)
    assert count_lines(named) is None


def test_csv_round_trip(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(CSV, encoding="utf-8")
    # By default a quoted cell may not span lines: line 6 opens one, so it is rejected alone and
    # line 7 is read as a row of its own (one cell).
    assert outcomes(path) == [
        (2, "Declaration"),
        (4, "MonthlyStat"),
        (5, "invalid_csv_row"),
        (6, "unclosed_quote"),
        (7, "invalid_csv_row"),
        (8, "Declaration"),
    ]
    assert outcomes(path, max_quoted_lines=2) == [
        (2, "Declaration"),
        (4, "MonthlyStat"),
        (5, "invalid_csv_row"),
        (6, "invalid_field:value"),
        (8, "Declaration"),
    ]
    results = {line.number: (line, result) for line, result in iter_lines(path, limits=InputLimits(max_quoted_lines=2))}
    declaration = results[2][1]
    assert isinstance(declaration, Declaration)
    assert (declaration.reporter, declaration.flow, declaration.currency, declaration.exporter) == (
        "DE",
        "export",
        "USD",
        "ACME, GmbH",
    )
    stat = results[4][1]
    assert isinstance(stat, MonthlyStat) and stat.identity == ("2024-01", "FR", "AM", "re-export", "854231")
    assert results[5][0].raw == "DE-2,,2024-03-06,DE,KZ,export,854231"
    assert results[6][0].raw == 'DE-3,,2024-03-07,DE,GE,export,854231,-1,,"multi\nline"'
    assert count_lines(path) == 7


def test_gzipped_csv_with_bom(tmp_path):
    path = tmp_path / "in.csv.gz"
    path.write_bytes(gzip.compress(b"\xef\xbb\xbf" + CSV.encode()))
    assert [number for number, _ in outcomes(path)] == [2, 4, 5, 6, 7, 8]
    assert outcomes(path)[0] == (2, "Declaration")


def test_csv_undecodable_row_is_a_reject(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b"period,reporter,partner,hs_code,value,unit\n2024-01,FR,AM,854231,3,caf\xe9\n")
    [(line, result)] = list(iter_lines(path))
    assert isinstance(result, RejectError) and result.reason == "encoding"
    assert line.raw == "2024-01,FR,AM,854231,3,caf\ufffd"


def test_jsonl_bom_and_undecodable_line(tmp_path):
    path = tmp_path / "data.txt"
    path.write_bytes(b"\xef\xbb\xbf" + orjson.dumps(STAT) + b"\n" + b'{"period": "caf\xe9"}\n')
    assert detect_format(path) == "jsonl"
    assert outcomes(path) == [(1, "MonthlyStat"), (2, "encoding")]
    assert list(iter_lines(path))[1][0].raw == '{"period": "caf\ufffd"}'


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.json", b"x", "jsonl"),
        ("a.NDJSON", b"x", "jsonl"),
        ("a.csv.gz", b"{", "csv"),
        ("export.dat", b"\n\n  {\"period\": 1}", "jsonl"),
        ("export.dat", b"period,reporter\n", "csv"),
        ("export", gzip.compress(b'{"period": 1}'), "jsonl"),
        ("empty", b"", "csv"),
    ],
)
def test_detect_format(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    assert detect_format(path) == expected


def test_raw_is_truncated():
    assert len(Line("x", 1, b"{" + b"a" * 5000).raw) == 2000
    assert Line("x", 1, "text\n").raw == "text"


def test_missing_file_raises_os_error(tmp_path):
    with pytest.raises(OSError):
        list(iter_lines(tmp_path / "absent.jsonl"))


def test_truncated_gzip_raises_os_error(tmp_path):
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(gzip.compress(JSONL * 50)[:-30])
    with pytest.raises(OSError, match="truncated|CRC|end"):
        list(iter_lines(path))


def test_empty_and_header_only_files_yield_nothing(tmp_path):
    empty = tmp_path / "e.jsonl"
    empty.write_bytes(b"")
    header = tmp_path / "h.csv"
    header.write_text("period,reporter\n")
    assert list(iter_lines(empty)) == [] and list(iter_lines(header)) == []
    assert count_lines(empty) == 0 and count_lines(header) == 0


def test_documented_examples_parse(tmp_path):
    doc = (Path(__file__).parents[2] / "docs" / "input-format.md").read_text(encoding="utf-8")
    blocks = dict(re.findall(r"```(json|csv)\n(.*?)```", doc, re.S))
    (tmp_path / "doc.jsonl").write_text(blocks["json"], encoding="utf-8")
    (tmp_path / "doc.csv").write_text(blocks["csv"], encoding="utf-8")
    from_jsonl = [record for _, record in iter_lines(tmp_path / "doc.jsonl")]
    from_csv = [record for _, record in iter_lines(tmp_path / "doc.csv")]
    assert [type(r).__name__ for r in from_jsonl] == ["Declaration", "MonthlyStat"]
    assert from_jsonl == from_csv
    assert (from_jsonl[1].reporter, from_jsonl[1].flow) == ("GR", "re-export")


# --- bounded reading ------------------------------------------------------------------------------

def _reference_lines(data: bytes, limit: int) -> list[tuple[int, object]]:
    """Physical lines (\\r\\n, \\n or a lone \\r) with their endings; longer than limit: (size,)."""
    out = []
    for number, match in enumerate(re.finditer(rb"([^\r\n]*)(\r\n|\r|\n|$)", data), 1):
        body, end = match.groups()
        if not body and not end:
            break
        out.append((number, (len(body),) if len(body) > limit else body + end))
    return out


@given(st.lists(st.tuples(st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
                          st.sampled_from([b"\n", b"\r\n", b"\r", b""])), max_size=12),
       st.integers(1, 9), st.integers(256, 300))
@settings(max_examples=300, deadline=None)
def test_physical_lines_split_like_csv_in_any_pieces_and_skip_long_lines(parts, piece, limit):
    import transitwatch.streams.files as files

    data = b"".join(body * (1 + limit // 10 if len(body) % 3 == 0 else 1) + end for body, end in parts)
    chunk = files._CHUNK
    files._CHUNK = piece  # read the stream a few bytes at a time: every boundary case
    try:
        got = [(n, (x.size,) if isinstance(x, LongLine) else x)
               for n, x in files._physical_lines(io.BytesIO(data), limit)]
    finally:
        files._CHUNK = chunk
    assert got == _reference_lines(data, limit)


def test_a_long_line_is_skipped_in_every_reader(tmp_path):
    limits = InputLimits(max_line_bytes=300)
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_bytes(orjson.dumps(STAT) + b"\n" + b'{"x": "' + b"y" * 1000 + b'"}\r\n' + orjson.dumps(STAT))
    assert outcomes(jsonl, max_line_bytes=300) == [(1, "MonthlyStat"), (2, "line_too_long"), (3, "MonthlyStat")]
    [(number, head, error)] = [m for m in iter_messages(jsonl, limits) if m[2] is not None]
    assert number == 2 and head == b'{"x": "' + b"y" * 1000 + b'"}' and error.reason == "line_too_long"
    assert "1,010 bytes" in error.message  # without the \n, with the \r
    table = tmp_path / "in.csv"
    table.write_text("period,reporter,partner,hs_code,value\n2024-01,DE,KZ,854231," + "5" * 400 + "\n"
                     "2024-02,DE,KZ,854231,6\n")
    assert outcomes(table, max_line_bytes=300) == [(2, "line_too_long"), (3, "MonthlyStat")]


def test_a_too_deep_line_is_rejected_before_it_is_parsed(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"period": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n" + orjson.dumps(STAT) + b"\n")
    assert outcomes(path) == [(1, "too_deep"), (2, "MonthlyStat")]


def test_iter_messages_of_csv_send_rejects_with_their_reason(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text('period,reporter,partner,hs_code,value\n2024-01,DE,KZ,854231,"5\n2024-02,DE,KZ,854231,6\n')
    got = [(n, m, e and e.reason) for n, m, e in iter_messages(path)]
    assert got == [(2, b'2024-01,DE,KZ,854231,"5', "unclosed_quote"),
                   (3, b'{"period":"2024-02","reporter":"DE","partner":"KZ","hs_code":"854231","value":"6"}', None)]


def test_check_inputs_reads_no_pipe(tmp_path):
    """A named pipe can be read once: checking it would lose its start, so it is left to the run."""
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    check_inputs([fifo])  # returns at once: opening the pipe for reading would block
