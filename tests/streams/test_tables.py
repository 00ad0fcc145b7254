"""CSV and Parquet read column-wise (streams/tables.py) through the replay's input path."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transitwatch.detectors.layouts import ReaderParams
from transitwatch.detectors.limits import InputLimits
from transitwatch.streams.files import InputFileError, iter_records
from transitwatch.streams.replay import ReplayResult, read_blocks
from transitwatch.streams.tables import iter_tables

HEADER = "period,reporter,partner,hs_code,value,net_mass_kg\n"


class _Run:
    """Stands in for ColumnarReplay: keeps what is fed, by line number."""

    def __init__(self) -> None:
        self.records: dict[int, dict] = {}

    def feed(self, block, *, source, lines):
        for i, line in enumerate(lines.tolist()):
            assert line not in self.records
            self.records[line] = block.to_dict(i)


DEFAULT, LIMITS = ReaderParams(), InputLimits()


def read(path, reader=DEFAULT, limits=LIMITS, chunk_bytes=1 << 20):
    """(accepted records by line, rejects by line as reason keys, result) through the replay's path."""
    run, rejects, result = _Run(), {}, ReplayResult(alerts=[])

    def reject(line, error):
        assert line.number not in rejects
        rejects[line.number] = error.key

    accepted = read_blocks([path], run, reject, reader=reader, limits=limits, chunk_bytes=chunk_bytes, result=result)
    assert accepted == len(run.records) + result.added_up
    return run.records, rejects, result


def read_row_by_row(path, limits=LIMITS):
    records, rejects = {}, {}
    for number, _, parsed in iter_records(path, format="csv", limits=limits):
        if isinstance(parsed, Exception):
            rejects[number] = parsed.key
        else:
            records[number] = parsed.to_dict()
    return records, rejects


# --- the column-wise path reads what the row-by-row path reads ---------------------------------

_CELL = st.sampled_from(["2024-01", "2024-13", "DE", "de", "EL", "XX", "KZ", "854231", "8542.31", "12a456",
                         "5", "1e3", "-3", "", " ", "1,5", '"a,b"', '""', "caf\u00e9"])
_LINE = st.one_of(
    st.lists(_CELL, min_size=6, max_size=6).map(",".join),
    st.lists(_CELL, min_size=1, max_size=8).map(",".join),  # another number of cells
    st.sampled_from(["", " ", ",,,,,", '2024-01,DE,KZ,854231,"5', "2024-01,DE,KZ,854231,5,7"]),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_LINE, max_size=40), st.sampled_from(["\n", "\r\n"]), st.integers(16, 400))
def test_the_arrow_path_reads_every_line_as_the_row_reader_does(tmp_path_factory, lines, end, chunk):
    path = tmp_path_factory.mktemp("csv") / "in.csv"
    path.write_bytes((HEADER.replace("\n", end) + end.join(lines) + (end if lines else "")).encode())
    records, rejects, _ = read(path, chunk_bytes=chunk)
    assert (records, rejects) == read_row_by_row(path)


def test_a_clean_file_is_read_by_arrow_in_chunks(tmp_path):
    rows = "".join(f"20{y}-{m:02d},DE,KZ,854231,{1000 + m},{m}\n" for y in range(10, 30) for m in range(1, 13))
    path = tmp_path / "in.csv"
    path.write_text(HEADER + rows)
    records, rejects, _ = read(path, chunk_bytes=512)
    assert rejects == {} and len(records) == 240 and min(records) == 2 and max(records) == 241
    assert records, rejects == read_row_by_row(path)


def test_a_bad_row_late_in_a_file_is_found_where_it_is(tmp_path):
    rows = [f"2024-{m:02d},DE,KZ,854231,{m},\n" for m in range(1, 13)] * 20
    rows[200] = '2024-01,DE,KZ,854231,"5,\n'  # a stray quote
    path = tmp_path / "in.csv"
    path.write_text(HEADER + "".join(rows))
    records, rejects, _ = read(path, chunk_bytes=256)
    assert rejects == {202: "unclosed_quote"} and len(records) == 239


# --- delimiters, decimal commas, encodings -----------------------------------------------------


def test_a_european_spreadsheet_csv_is_read(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("period;reporter;partner;hs_code;value\n2024-01;DE;KZ;854231;1.234,50\n2024-02;DE;KZ;854231;7,25\n")
    records, rejects, result = read(path)
    assert rejects == {} and [r["value"] for r in records.values()] == [1234.5, 7.25]
    assert "delimiter ';', decimal ','" in result.layouts[str(path)]


def test_the_delimiter_and_decimal_can_be_set(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("period|reporter|partner|hs_code|value\n2024-01|DE|KZ|854231|12,5\n")
    records, _, _ = read(path, ReaderParams(delimiter="|", decimal=","))
    assert [r["value"] for r in records.values()] == [12.5]
    _, rejects, _ = read(path, ReaderParams(delimiter="|", decimal="."))
    assert rejects == {2: "invalid_field:value"}


def test_a_file_in_another_encoding_is_read_when_named(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes("period;reporter;partner;hs_code;value;exporter\n2024-01;DE;KZ;854231;5;M\u00fcller\n"
                     .encode("cp1252"))
    assert read(path)[1] == {2: "encoding"}  # UTF-8 by default: the row says so
    records, rejects, _ = read(path, ReaderParams(encoding="cp1252"))
    assert rejects == {} and len(records) == 1


# --- Parquet -------------------------------------------------------------------------------------


def test_parquet_is_read_with_its_types(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({
        "period": ["2024-01", "2024-02", "2024-03"], "reporter": ["DE", "el", "DE"], "partner": ["KZ"] * 3,
        "hs_code": pa.array([854231, 854231, 12], pa.int64()), "value": [1.5, 2.0, -1.0],
    }), path)
    records, rejects, result = read(path)
    assert [r["reporter"] for r in records.values()] == ["DE", "GR"]
    assert rejects == {3: "invalid_field:hs_code"} and result.layouts[str(path)] == "parquet"


def test_a_damaged_parquet_file_is_an_input_error(tmp_path):
    path = tmp_path / "in.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(InputFileError, match="Parquet"):
        list(iter_tables(path, ReaderParams()))


# --- layouts that add up ---------------------------------------------------------------------------


def test_comtrade_rows_of_one_lane_and_month_add_up_and_hs4_totals_are_set_aside(tmp_path):
    path = tmp_path / "ct.csv"
    path.write_text(
        "period,reporterISO,partnerISO,flowCode,cmdCode,primaryValue,netWgt,motCode,customsCode,partner2Code\n"
        "202201,ARM,RUS,X,8703,30,,0,C00,0\n"       # HS4 total over the HS6 rows
        "202201,ARM,RUS,X,870323,10,1,3200,C00,0\n"  # by road
        "202201,ARM,RUS,X,870323,20,2,9300,C00,0\n"  # self-propelled
        "202201,ARM,KAZ,X,870323,5,1,0,C00,0\n"      # a total ...
        "202201,ARM,KAZ,X,870323,4,1,3200,C00,0\n"   # ... and one of its breakdowns
        "202201,ARM,KAZ,X,8704,9,,0,C00,0\n"         # an HS4 row with no HS6 rows
        "2022,ARM,RUS,X,870323,9,,0,C00,0\n"         # a year
    )
    records, rejects, result = read(path)
    assert [(r["partner"], r["value"], r["net_mass_kg"]) for r in records.values()] == [("RU", 30.0, 3.0),
                                                                                     ("KZ", 5.0, 1.0)]
    assert rejects == {2: "aggregate_code:hs_code", 6: "breakdown_of_total", 7: "aggregate_only:hs_code",
                       8: "not_monthly:period"}
    assert result.added_up == 1 and sorted(records) == [3, 5]
    assert Counter(rejects.values())  # every row is accounted for
    assert len(records) + result.added_up + len(rejects) == 7


def test_a_layout_without_its_columns_stops_the_run(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(HEADER + "2024-01,DE,KZ,854231,5,\n")
    with pytest.raises(InputFileError, match="PRODUCT_NC"):
        read(path, ReaderParams(format="comext"))


# --- produce reads tables as replay does -----------------------------------------------------------


def test_produce_publishes_the_rows_of_a_spreadsheet_csv_as_the_contract_names_them(tmp_path):
    from transitwatch.streams.tables import iter_table_messages

    path = tmp_path / "in.csv"
    path.write_text("period;reporter;partner;hs_code;value\n2024-01;DE;KZ;854231;1.234,5\n2024-02;DE;KZ\n")
    out = list(iter_table_messages(path, ReaderParams()))
    assert out[0][:2] == (2, b'{"period":"2024-01","reporter":"DE","partner":"KZ","hs_code":"854231","value":"1234.5"}')
    assert out[1][0] == 3 and out[1][2].reason == "invalid_csv_row"


def test_produce_sums_a_comtrade_file_before_publishing(tmp_path):
    import orjson

    from transitwatch.streams.tables import iter_table_messages

    path = tmp_path / "ct.csv"
    path.write_text("period,reporterISO,partnerISO,flowCode,cmdCode,primaryValue,motCode\n"
                    "202201,ARM,RUS,X,870323,10,3200\n202201,ARM,RUS,X,870323,20,9300\n202201,ARM,RUS,X,8703,30,0\n")
    out = list(iter_table_messages(path, ReaderParams()))
    assert [(n, e.reason if e else orjson.loads(m)["value"]) for n, m, e in out] == [(2, 30.0), (4, "aggregate_code")]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600), st.sampled_from([",", ";"]))
def test_any_bytes_are_records_or_rejects_never_a_crash(tmp_path_factory, body, delimiter):
    path = tmp_path_factory.mktemp("csv") / "in.csv"
    path.write_bytes(HEADER.replace(",", delimiter).encode() + body)
    records, rejects, _ = read(path, chunk_bytes=64)
    lines = (HEADER.encode() + body).replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n") + 1
    assert not set(records) & set(rejects)
    assert all(2 <= n <= lines for n in [*records, *rejects])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_LINE, max_size=30))
def test_produce_publishes_transitwatch_csv_as_before(tmp_path_factory, lines):
    from transitwatch.streams.files import iter_messages
    from transitwatch.streams.tables import iter_table_messages

    path = tmp_path_factory.mktemp("csv") / "in.csv"
    path.write_bytes((HEADER + "\n".join(lines) + ("\n" if lines else "")).encode())

    def shown(items):
        return [(n, m, e.key if e else None) for n, m, e in items]

    assert shown(iter_table_messages(path, ReaderParams())) == shown(iter_messages(path))


def test_comext_uses_the_total_of_the_statistical_regimes(tmp_path):
    path = tmp_path / "full202201.csv"
    path.write_text("DECLARANT_ISO,PARTNER_ISO,PRODUCT_NC,FLOW,STAT_REGIME,PERIOD,VALUE_IN_EUROS,QUANTITY_IN_KG\n"
                    "DE,KG,85423190,2,1,202201,70,1\n"
                    "DE,KG,85423190,2,2,202201,30,1\n"
                    "DE,KG,85423190,2,4,202201,100,2\n"
                    "EL,AM,85423190,2,1,202201,5,:\n"
                    "EL,AM,85423190,2,3,202201,6,1\n")
    records, rejects, result = read(path)
    assert [(r["reporter"], r["partner"], r["value"], r["currency"]) for r in records.values()] == [
        ("DE", "KG", 100.0, "EUR"), ("GR", "AM", 11.0, "EUR")]
    assert rejects == {2: "breakdown_of_total", 3: "breakdown_of_total"} and result.added_up == 1
