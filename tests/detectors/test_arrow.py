"""The Arrow reader of JSON Lines (``transitwatch.detectors.arrow``) must give what the orjson path gives:
the same records, rejects, line numbers and alerts, whether Arrow reads a chunk or hands it back."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import transitwatch.streams.replay as replay_module
from benchmarks.scenarios.declarations import generate
from tests.detectors.test_columnar import _DECLARATION, _STATISTIC, _rows
from transitwatch.detectors.arrow import split_data, split_lines
from transitwatch.detectors.columnar import ColumnarReplay
from transitwatch.detectors.contract import CURRENCY_CODES, parse_json_line
from transitwatch.detectors.frame import Block, complete, parse_objects
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.replay import read_blocks, replay

CONFIG = WatchConfig.default()
NO_RATE = sorted(CURRENCY_CODES - set(CONFIG.rates))[0]


def orjson_path(lines):
    """What ``_decode_jsonl`` does with a chunk: orjson per line, then the object fast path."""
    objs = []
    for line in lines:
        try:
            objs.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            objs.append(None)
    block, rejects = parse_objects(objs, lines)
    return block, [(i, e.key) for i, e in rejects]


def arrow_path(lines):
    split = split_lines(lines)
    if split is None:
        return None
    block, rejects = complete(*split, lambda i: parse_json_line(lines[i]))
    return block, [(i, e.key) for i, e in rejects]


def assert_same_block(got: Block, expected: Block):
    for f in dataclasses.fields(Block):
        a, b = getattr(got, f.name), getattr(expected, f.name)
        assert a.dtype == b.dtype, f.name
        np.testing.assert_array_equal(a, b, err_msg=f.name)
        if a.dtype.kind == "f":  # -0.0 and 0.0 compare equal; the sign must match too
            assert (np.signbit(a) == np.signbit(b)).all(), f.name
        if a.dtype == object:
            assert [type(x) for x in a] == [type(x) for x in b], f.name


def assert_paths_agree(lines):
    got = arrow_path(lines)
    if got is None:
        return False
    expected = orjson_path(lines)
    assert got[1] == expected[1], "rejects"
    assert_same_block(got[0], expected[0])
    return True


# --- chunks -----------------------------------------------------------------------------------

_TEXT_FIELDS = ["declaration_id", "date", "period", "reporter", "partner", "flow", "hs_code", "currency",
                "unit", "exporter", "consignee", "origin"]
_ODD_TEXT = st.sampled_from(["", " ", " DE", "DE ", "de", "XX", "2024-02-30", "2024-13", "8542.31", "８５４２３１",
                             "A\u00a0", "\u3000x", "Ок", "Acme\t", "\x1f", "x\u2028", "20DE0001", "EUR", "re-export"])
_ODD_NUMBER = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-2**63, 2**64 - 1),
                        st.sampled_from([0, -0.0, 2**53, 2**53 - 1, 1e-320, 9007199254740993]))


@st.composite
def _consistent_rows(draw):
    """Mostly valid rows whose fields keep one JSON type (so Arrow reads the chunk), with odd values."""
    base = draw(st.one_of(_DECLARATION, _STATISTIC))
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(_TEXT_FIELDS + ["value", "net_mass_kg", "quantity", "extra"]))
        choice = draw(st.integers(0, 2))
        if choice == 0:
            base.pop(name, None)
        elif choice == 1:
            base[name] = None
        elif name in ("value", "net_mass_kg", "quantity"):
            base[name] = draw(_ODD_NUMBER)
        elif name == "extra":
            base[name] = draw(st.one_of(st.text(max_size=4), st.integers(), st.floats(allow_nan=False)))
        else:
            base[name] = draw(_ODD_TEXT)
    return base


def _dump(row):
    try:
        return orjson.dumps(row) + b"\n"
    except TypeError:  # an int beyond 64 bits: valid JSON all the same
        return json.dumps(row).encode() + b"\n"


@given(st.lists(_consistent_rows(), min_size=1, max_size=25))
@settings(max_examples=300, deadline=None)
def test_arrow_path_equals_orjson_path_for_consistent_chunks(rows):
    lines = [_dump(r) for r in rows]
    agreed = assert_paths_agree(lines)
    # Arrow must hand back only chunks it cannot read line for line: here, only for a type conflict
    # between lines (a field that is a string in one row and a number in another), or a date or
    # period that is not a string (Arrow is told they are strings).
    if not agreed:
        kinds: dict[str, set] = {}
        for r in rows:
            for k, v in r.items():
                if v is not None:
                    kinds.setdefault(k, set()).add(float if type(v) in (int, float) else type(v))
        assert any(len(k) > 1 for k in kinds.values()) or kinds.get("date", {str}) != {str} \
            or kinds.get("period", {str}) != {str}, rows


@given(st.lists(_rows(), min_size=1, max_size=25))
@settings(max_examples=300, deadline=None)
def test_arrow_path_equals_orjson_path_for_any_rows(rows):
    lines = []
    for r in rows:
        try:
            lines.append(_dump(r))
        except (TypeError, orjson.JSONEncodeError):  # a lone surrogate: not JSON orjson writes
            lines.append(b'{"reporter": "\\ud800"}\n')
    assert_paths_agree(lines)


@pytest.mark.parametrize("raw", [
    b'{"value": NaN, "period": "2024-01", "reporter": "DE", "partner": "KZ", "hs_code": "854231"}\n',
    b'{"value": 1, "net_mass_kg": Infinity, "period": "2024-01", "reporter": "DE", "partner": "KZ", "hs_code": "854231"}\n',
    b'{"value": 1, "extra": NaN, "period": "2024-01", "reporter": "DE", "partner": "KZ", "hs_code": "854231"}\n',
    b'{"value": 1, "extra": {"a": [1, 2], "b": {"c": "x"}}, "period": "2024-01", "reporter": "DE", "partner": "KZ", "hs_code": "854231"}\n',
    b'{"value": -0, "period": "2024-01", "reporter": "DE", "partner": "KZ", "hs_code": "854231"}\n',
    b'{"value": 9007199254740993, "period": "2024-01", "reporter": "DE", "partner": "KZ", "hs_code": "854231"}\n',
    b'{"value": 1, "period": "2024-01", "reporter": "DE", "partner": "K\\u005a", "hs_code": "854231"}\n',
    b'{"value": 1, "period": "2024-01", "reporter": "DE", "partner": "KZ", "hs_code": "854231", "flow": null}\n',
])
def test_values_orjson_refuses_or_reads_differently_take_the_slow_path(raw):
    good = _dump({"period": "2024-02", "reporter": "DE", "partner": "KZ", "hs_code": "854231", "value": 2.5})
    lines = [good, raw, good]
    assert assert_paths_agree(lines), "Arrow reads these chunks"


@pytest.mark.parametrize("lines", [
    [b'{"value": 1}\n', b'not json\n'],                           # a malformed line
    [b'{"value": 1}\n', b'{"value": "1"}\n'],                     # a type conflict
    [b'{"value": 1, "value": 2}\n'],                              # a duplicate key
    [b'{"value": 1} {"value": 2}\n', b'{"value": 3}\n'],          # two objects on a line
    [b'{"value": 1, "x": {}\n', b'}\n'],                          # an object over two lines
    [b'{"value": 1,\n', b'"x": 2}\n', b'{"value": 3} {"value": 4}\n'],  # the two, counts even out
    [b'{"reporter": "\xff"}\n'],                                  # not UTF-8
    [b'[1]\n'],
    [b'{"value": 1, "x": [1, {"b": 2}]}\n'],                     # a list of a number and an object
])
def test_chunks_arrow_cannot_read_line_for_line_are_handed_back(lines):
    assert split_lines(lines) is None
    assert split_data(b"".join(lines)) is None


# --- the replay: Arrow on against Arrow off ---------------------------------------------------

def _read(path, monkeypatch, *, arrow, chunk_bytes=4096):
    """read_blocks over a file with small chunks; returns outcome and which reader took each chunk."""
    used = []

    def spy(function, name):
        def wrapped(*args):
            result = function(*args)
            used.append((name, result is not None))
            return result
        return wrapped

    monkeypatch.setattr(replay_module, "split_data", spy(split_data, "data"))
    monkeypatch.setattr(replay_module, "split_lines", spy(split_lines, "lines"))
    monkeypatch.setattr(replay_module, "ARROW_TRIES", 3 if arrow else 0)
    run = ColumnarReplay(CONFIG)
    rejected = []
    accepted = read_blocks([path], run, lambda line, e: rejected.append((line.number, e.key, line.raw)),
                           chunk_bytes=chunk_bytes)
    out = run.run(final_month="closed")
    monkeypatch.undo()
    alerts = [a.to_dict() for a in out.engine.drain()]
    no_fx = [(index, number, record, e.key) for index, number, record, e in out.rejects]
    return (accepted, rejected, alerts, out.engine.counts, no_fx), used


def _body(n=600, seed=4):
    rows, _ = generate(n, seed)
    return [orjson.dumps(r) for r in rows]


def _compare(tmp_path, monkeypatch, data: bytes):
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    got, used = _read(path, monkeypatch, arrow=True)
    expected, none = _read(path, monkeypatch, arrow=False)
    assert none == [], "with Arrow off, no Arrow reader runs"
    assert got == expected
    assert got[0] > 0 and got[2], "the comparison must see records and alerts"
    return got, used


def test_plain_file_is_read_by_arrow_whole(tmp_path, monkeypatch):
    got, used = _compare(tmp_path, monkeypatch, b"\n".join(_body()) + b"\n")
    assert used and set(used) == {("data", True)}
    assert got[1] == []


def test_a_chunk_with_a_bad_line_falls_back_and_the_others_do_not(tmp_path, monkeypatch):
    body = _body()
    body[100] = b'{"declaration_id": "x", "value": 1'  # cut short
    body[300] = b"not json"
    got, used = _compare(tmp_path, monkeypatch, b"\n".join(body) + b"\n")
    assert ("lines", False) in used and ("data", True) in used
    assert [(n, key) for n, key, _ in got[1]] == [(101, "invalid_json"), (301, "invalid_json")]


def test_a_chunk_with_mixed_types_falls_back(tmp_path, monkeypatch):
    body = _body()
    row = orjson.loads(body[200])
    body[200] = orjson.dumps(dict(row, value=str(row["value"]), reporter=row["reporter"].lower()))
    body[201] = orjson.dumps(dict(orjson.loads(body[201]), hs_code=int(orjson.loads(body[201])["hs_code"])))
    got, used = _compare(tmp_path, monkeypatch, b"\n".join(body) + b"\n")
    assert ("data", False) in used and ("data", True) in used
    assert got[1] == []  # both lines are accepted, by the slow path


def test_extra_unknown_fields_are_read_by_arrow(tmp_path, monkeypatch):
    body = []
    for i, line in enumerate(_body()):
        row = orjson.loads(line)
        extra = [{"source": "customs"}, {"n": i}, {"nested": {"a": [i]}}, {"f": i / 7}, {}][i % 5]
        body.append(orjson.dumps(row | extra))
    body[50] = body[50][:-1] + b', "bad": NaN}'  # Arrow reads NaN; the line goes to parse_json_line
    got, used = _compare(tmp_path, monkeypatch, b"\n".join(body) + b"\n")
    assert set(used) == {("data", True)}


def test_blank_lines_bom_and_crlf(tmp_path, monkeypatch):
    body = _body()
    body[40:40] = [b"", b"   ", b"\t"]
    data = b"\xef\xbb\xbf" + b"\r\n".join(body) + b"\r\n\r\n"
    got, used = _compare(tmp_path, monkeypatch, data)
    assert used and set(used) == {("lines", True)}, "CRLF and blank lines: split into lines, then Arrow"


def test_bom_at_the_start_of_a_plain_file(tmp_path, monkeypatch):
    body = _body()
    body[7] = b'{"declaration_id": "x", "date": "2022-02-30"}'
    got, used = _compare(tmp_path, monkeypatch, b"\xef\xbb\xbf" + b"\n".join(body))  # no final newline
    assert set(used) == {("data", True)}
    assert [(n, key.split(":")[0]) for n, key, _ in got[1]] == [(8, "missing_field")]


def test_arrow_is_given_up_for_a_file_it_cannot_read(tmp_path, monkeypatch):
    body = []
    for i, line in enumerate(_body()):  # HS codes as numbers and as strings, in every chunk
        row = orjson.loads(line)
        body.append(orjson.dumps(dict(row, hs_code=int(row["hs_code"]) if i % 2 else row["hs_code"])))
    got, used = _compare(tmp_path, monkeypatch, b"\n".join(body) + b"\n")
    assert used == [("data", False)] * replay_module.ARROW_TRIES, "then the file is left to orjson"


def test_replay_end_to_end_with_rejects_file(tmp_path, monkeypatch):
    body = _body(3000, 9)
    body[5:5] = [b"", b"[1]", b'{"period": "2024-13", "reporter": "DE", "partner": "KZ", "hs_code": "854231", "value": 1}']
    body[900] = orjson.dumps(dict(orjson.loads(body[900]), currency=NO_RATE))
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(body) + b"\n")

    def run(tries):
        monkeypatch.setattr(replay_module, "ARROW_TRIES", tries)
        rejects = tmp_path / f"rejects-{tries}.jsonl"
        result = replay([path], config=CONFIG, rejects_out=rejects, final_month="closed")
        return result, rejects.read_bytes()

    (got, got_rejects), (expected, expected_rejects) = run(3), run(0)
    assert [a.to_dict() for a in got.alerts] == [a.to_dict() for a in expected.alerts] and got.alerts
    assert got.summary([str(path)]) == expected.summary([str(path)])
    assert got_rejects == expected_rejects
    rows = [orjson.loads(x) for x in got_rejects.splitlines()]
    assert [(r["line"], r["reason"]) for r in rows] == [(7, "not_an_object"), (8, rows[1]["reason"]), (901, "no_fx_rate")]
    assert rows[1]["reason"] != "no_fx_rate"


def test_a_field_is_read_when_the_first_row_has_an_unknown_key_instead():
    """Found by the property above: both rows have nine keys, the first an unknown ``extra``,
    the second ``origin``; the fast object path read every row by the first row's keys and
    lost the second row's origin."""
    base = {"reporter": "DE", "partner": "KG", "hs_code": "854231", "value": 1.0, "currency": "USD",
            "declaration_id": "a", "date": "2024-01-05"}
    rows = [dict(base, extra=0), dict(base, declaration_id="b", origin="CN")]
    block, rejects = parse_objects(rows)
    assert rejects == [] and [d.get("origin") for d in block.to_dicts()] == [None, "CN"]
    assert assert_paths_agree([orjson.dumps(r) for r in rows])


def test_split_table_reads_large_and_view_strings_as_strings():
    """Polars exports text as large or view strings: the fast path reads them like plain ones."""
    import pyarrow as pa

    from transitwatch.detectors.arrow import split_table

    text = {"period": ["2024-01", "2024-02"], "reporter": ["DE", "DE"], "partner": ["KZ", "KZ"],
            "hs_code": ["854231", "854231"]}
    for kind in (pa.string(), pa.large_string(), pa.string_view()):
        columns = {name: pa.array(values, kind) for name, values in text.items()}
        columns["value"] = pa.array([1.0, 2.0])
        block, slow = split_table(columns, 2)
        assert len(block) == 2 and not slow.any(), kind
