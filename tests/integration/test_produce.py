"""``transitwatch produce`` against a real Kafka broker."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from transitwatch.streams.cli import main

pytestmark = pytest.mark.integration


async def _read(bootstrap: str, topic: str, n: int) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=f"{topic}-check")
    await consumer.start()
    out: list = []
    try:
        while len(out) < n:
            batches = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), timeout=60)
            for messages in batches.values():
                out.extend(messages)
    finally:
        await consumer.stop()
    return out


def test_produce_routes_keys_and_dead_letters(kafka, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRANSITWATCH_DECLARATIONS_TOPIC", "it.produce.declarations")
    monkeypatch.setenv("TRANSITWATCH_MONTHLY_TOPIC", "it.produce.monthly")
    monkeypatch.setenv("TRANSITWATCH_DEAD_LETTER_TOPIC", "it.produce.dead-letter")
    jsonl = tmp_path / "mixed.jsonl"
    jsonl.write_bytes(
        b'{"declaration_id": "d1", "date": "2022-03-01", "reporter": "de", "partner": "KG", "hs_code": "85423190", "value": 10}\n'
        b'\n'
        b'{"period": "2022-03", "reporter": "DE", "partner": "AM", "hs_code": "854232", "value": 5}\n'
        b'this is not json\n'
    )
    csv = tmp_path / "rows.csv"
    csv.write_text("period,reporter,partner,hs_code,value\n2022-04,PL,KZ,854239,7\n2022-05,PL,KZ\n")

    code = main(["produce", str(jsonl), str(csv), "--broker", f"kafka://{kafka.bootstrap}", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "2 messages to it.produce.declarations" in out and "2 messages to it.produce.monthly" in out

    declarations = asyncio.run(_read(kafka.bootstrap, "it.produce.declarations", 2))
    assert [m.key for m in declarations] == [b"854231", None]  # keyed by goods group
    assert declarations[1].value == b"this is not json", "bad lines reach the worker unchanged"
    monthly = asyncio.run(_read(kafka.bootstrap, "it.produce.monthly", 2))
    assert orjson.loads(monthly[1].value) == {"period": "2022-04", "reporter": "PL", "partner": "KZ",
                                              "hs_code": "854239", "value": "7"}
    assert dict(monthly[0].headers)["line"] == b"3"
    dead = asyncio.run(_read(kafka.bootstrap, "it.produce.dead-letter", 1))
    assert dict(dead[0].headers)["reason"] == b"invalid_csv_row"
    assert dict(dead[0].headers)["line"] == b"3"


def test_produce_reports_an_unreachable_broker(tmp_path, capsys):
    path = tmp_path / "one.jsonl"
    path.write_text('{"period": "2022-03", "reporter": "DE", "partner": "AM", "hs_code": "854232", "value": 5}\n')
    code = main(["produce", str(path), "--broker", "kafka://127.0.0.1:9", "--quiet"])
    assert code == 2
    assert "cannot publish" in capsys.readouterr().err
