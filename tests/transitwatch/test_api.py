"""The notebook API: ``transitwatch.detect`` over frames equals ``transitwatch replay`` over files."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.json as pj
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import transitwatch
from transitwatch.api import RejectedRowsWarning, alerts_frame
from transitwatch.detectors.errors import ConfigError, StrictModeError
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.cli import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "transitwatch" / "data" / "eurostat_chpl_exports_2020_2022.jsonl.gz"
CONFIG = ROOT / "transitwatch" / "data" / "eurostat.toml"
TODAY = dt.date(2026, 12, 1)


def _plain(records: list[dict]) -> list[dict]:
    """Records with NaN (how a DataFrame holds a missing number) as None, as JSON has it."""
    def clean(v):
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    return [{k: clean(v) for k, v in r.items()} for r in records]


@pytest.fixture(scope="module")
def cli_alerts(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("cli") / "alerts.jsonl"
    assert main(["replay", str(SAMPLE), "--config", str(CONFIG), "--alerts-out", str(out), "--quiet"]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_detect_on_the_shipped_sample_equals_the_command_line(cli_alerts):
    table = pj.read_json(SAMPLE)
    alerts = transitwatch.detect(table, config=CONFIG)
    assert len(alerts) == len(cli_alerts) > 1000
    assert list(alerts.columns) == list(cli_alerts[0])
    assert _plain(alerts.to_dict("records")) == _plain(cli_alerts)
    summary = alerts.attrs["summary"]
    assert summary["records accepted"] == summary["lines read"] == table.num_rows


def test_a_pandas_frame_with_other_column_names_gives_the_same_alerts(cli_alerts):
    with gzip.open(SAMPLE, "rt") as f:
        frame = pd.read_json(f, lines=True, dtype={"hs_code": str, "period": str})
    frame = frame.rename(columns={"reporter": "DECLARANT_ISO", "partner": "PARTNER_ISO", "value": "VALUE_IN_EUROS"})
    frame["extra"] = range(len(frame))  # not a contract field: ignored
    alerts = transitwatch.detect(frame, WatchConfig.from_toml(CONFIG.read_text()),
                                 columns={"reporter": "DECLARANT_ISO", "partner": "PARTNER_ISO", "value": "VALUE_IN_EUROS"})
    assert _plain(alerts.to_dict("records")) == _plain(cli_alerts)


def test_a_polars_frame_gives_the_same_alerts(cli_alerts):
    pl = pytest.importorskip("polars")
    frame = pl.from_arrow(pj.read_json(SAMPLE))
    alerts = transitwatch.detect(frame, config=str(CONFIG))
    assert _plain(alerts.to_dict("records")) == _plain(cli_alerts)


def test_replay_of_the_api_is_the_command_line_s(cli_alerts):
    result = transitwatch.replay(SAMPLE, CONFIG)
    assert _plain(alerts_frame(result).to_dict("records")) == _plain(cli_alerts)


def _surge_frame(n_months: int = 48, jump_at: int = 40) -> pd.DataFrame:
    months = pd.period_range("2019-01", periods=n_months, freq="M")
    return pd.DataFrame({"period": months, "reporter": "DE", "partner": "KG", "hs_code": "854231",
                         "value": [100_000.0] * jump_at + [2_500_000.0] * (n_months - jump_at)})


def test_periods_and_timestamps_are_read_as_the_contract_s_text():
    by_period = transitwatch.detect(_surge_frame(), today=TODAY)
    as_text = _surge_frame()
    as_text["period"] = as_text["period"].astype(str)
    assert by_period.equals(transitwatch.detect(as_text, today=TODAY))
    assert by_period["period"].iloc[0] == "2022-05" and by_period["case_event"].iloc[0] == "opened"
    decl = pd.DataFrame({"declaration_id": ["a", "b"], "date": pd.to_datetime(["2024-03-05", "2024-03-06"]),
                         "reporter": "DE", "partner": "KZ", "hs_code": "854231", "value": [1.0, 2.0]})
    assert transitwatch.detect(decl, today=TODAY).attrs["summary"]["records accepted"] == 2


def test_rejected_rows_are_counted_warned_written_and_strict_raises(tmp_path):
    frame = _surge_frame().astype({"period": str})
    frame.loc[3, "hs_code"] = "12a456"
    frame.loc[5, "period"] = "2019-13"
    out = tmp_path / "rejects.jsonl"
    with pytest.warns(RejectedRowsWarning, match="2 of 48 rows"):
        alerts = transitwatch.detect(frame, rejects_out=out, today=TODAY)
    assert alerts.attrs["summary"]["records accepted"] == 46
    rejects = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["source"], r["line"], r["field"]) for r in rejects] == [("<frame>", 4, "hs_code"), ("<frame>", 6, "period")]
    with pytest.raises(StrictModeError):
        transitwatch.detect(frame, strict=True, today=TODAY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        transitwatch.detect(_surge_frame(), today=TODAY)  # nothing rejected: no warning


def test_a_frame_without_contract_columns_is_every_row_rejected_none_invented():
    frame = pd.DataFrame({"Land": ["DE", "FR"], "Wert": [1.0, 2.0]})
    with pytest.warns(RejectedRowsWarning, match="2 of 2 rows"):
        alerts = transitwatch.detect(frame, today=TODAY)
    summary = alerts.attrs["summary"]
    assert alerts.empty and summary["lines read"] == 2 and sum(summary["rejected"].values()) == 2


def test_wrong_inputs_are_explicit_errors():
    with pytest.raises(TypeError, match="DataFrame"):
        transitwatch.detect([{"period": "2024-01"}])
    with pytest.raises(ConfigError, match="not fields"):
        transitwatch.detect(_surge_frame(), columns={"country": "reporter"})
    with pytest.raises(ConfigError, match="does not have"):
        transitwatch.detect(_surge_frame(), columns={"value": "VALUE_IN_EUROS"})
    with pytest.raises(ConfigError, match="WatchConfig"):
        transitwatch.detect(_surge_frame(), config=42)


def test_no_alerts_is_an_empty_frame_with_the_alert_fields():
    flat = _surge_frame(jump_at=48)
    alerts = transitwatch.detect(flat, today=TODAY)
    assert alerts.empty and {"alert_id", "case_id", "severity", "evidence"} <= set(alerts.columns)


def test_import_transitwatch_is_light_and_has_a_version():
    code = ("import sys, transitwatch; print(transitwatch.__version__);"
            "print(any(m in sys.modules for m in ('pandas', 'numpy', 'pyarrow', 'transitwatch.detectors')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] and out[0] != "0+unknown" and out[1] == "False"
    assert {"detect", "replay", "WatchConfig", "Declaration", "MonthlyStat"} <= set(dir(transitwatch))


_lanes = st.sampled_from([("DE", "KG", "854231"), ("PL", "KZ", "851712"), ("DE", "AM", "847150")])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(_lanes, st.integers(0, 35), st.floats(0, 5e6, allow_nan=False),
                               st.sampled_from(["ok", "ok", "ok", "bad_hs", "bad_period"])), min_size=1, max_size=120))
def test_detect_equals_replay_of_the_same_rows_as_json_lines(tmp_path_factory, rows):
    records = []
    for (reporter, partner, hs), month, value, kind in rows:
        period = f"{2020 + month // 12}-{month % 12 + 1:02d}" if kind != "bad_period" else "2020-13"
        records.append({"period": period, "reporter": reporter, "partner": partner,
                        "hs_code": hs if kind != "bad_hs" else "12x", "value": value})
    path = tmp_path_factory.mktemp("prop") / "rows.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    expected = transitwatch.replay(path, today=TODAY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RejectedRowsWarning)
        got = transitwatch.detect(pa.Table.from_pylist(records), today=TODAY)
    assert _plain(got.to_dict("records")) == _plain(alerts_frame(expected).to_dict("records"))
    assert got.attrs["summary"]["rejected"] == expected.summary([str(path)])["rejected"]
