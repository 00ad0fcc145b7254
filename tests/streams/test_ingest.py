"""The ingest loop without Kafka: routing and bundles, dead-letter headers, and the order
of acknowledgements and commits (a fake consumer and controllable acknowledgements)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from types import SimpleNamespace

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from transitwatch.detectors.contract import parse_json_line, rebuild
from transitwatch.detectors.limits import InputLimits
from transitwatch.detectors.watch import WatchConfig
from transitwatch.streams.ingest import Ingest, route_batch
from transitwatch.streams.metrics import WorkerMetrics
from transitwatch.streams.settings import Settings
from transitwatch.streams.state import MAX_MESSAGE_BYTES, MAX_RECORD_BYTES, event_day, goods_partition

SETTINGS = Settings(partitions=4, batch_size=5, ingest_batch_seconds=0.1)
CONFIG = WatchConfig.default()
DECL, STAT = SETTINGS.declarations_topic, SETTINGS.monthly_topic


def decl(i: int, date: str = "2024-01-09", hs: str = "854231", partner: str = "KG", currency: str = "USD") -> bytes:
    return orjson.dumps({"declaration_id": f"d{i}", "date": date, "reporter": "DE", "partner": partner,
                         "hs_code": hs, "value": 10.0 + i, "currency": currency})


def stat(period: str = "2024-02", hs: str = "847150") -> bytes:
    return orjson.dumps({"period": period, "reporter": "PL", "partner": "KZ", "hs_code": hs, "value": 5})


def msg(topic: str, partition: int, offset: int, value: bytes | None, key: bytes | None = None,
        timestamp: int = 1_700_000_000_000) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, partition=partition, offset=offset, key=key, value=value, timestamp=timestamp)


TODAY = dt.date(2024, 6, 1)


def route(batch, config=CONFIG):
    return route_batch(batch, SETTINGS, config, today=TODAY)


def bundles(routed) -> list[dict]:
    """One bundle per goods partition, in partition order (as long as none was split)."""
    assert [p for p, _ in routed.bundles] == list(range(SETTINGS.partitions))
    return [orjson.loads(b) for _, b in routed.bundles]


# -- route_batch ---------------------------------------------------------------------------------


def test_records_go_to_their_goods_partition_with_timestamps_and_sources():
    batch = [msg(DECL, 0, 10, decl(1, hs="854231"), timestamp=1_700_000_000_500),
             msg(DECL, 0, 11, decl(2, hs="847150")),
             msg(STAT, 2, 3, stat(hs="854231"))]
    routed = route(batch)
    got = bundles(routed)
    assert len(got) == SETTINGS.partitions, "every goods partition gets a bundle"
    placed = {}
    for partition, bundle in enumerate(got):
        assert len(bundle["records"]) == len(bundle["ts"]) == len(bundle["src"])
        for record, ts, src in zip(bundle["records"], bundle["ts"], bundle["src"]):
            placed[tuple(src)] = (partition, record, ts)
    p, record, ts = placed[(f"{DECL}:0", 10)]
    assert p == goods_partition("854231", SETTINGS.partitions)
    assert rebuild(record) == parse_json_line(batch[0].value)
    assert ts == pytest.approx(1_700_000_000.5), "Kafka's milliseconds become seconds"
    assert placed[(f"{DECL}:0", 11)][0] == goods_partition("847150", SETTINGS.partitions)
    assert placed[(f"{STAT}:2", 3)][0] == goods_partition("854231", SETTINGS.partitions)
    assert routed.forwarded == 3 and routed.consumed == {"declarations": 2, "monthly": 1}


def test_group_order_within_an_input_partition_is_kept():
    batch = [msg(DECL, 1, o, decl(o, date=f"2024-01-{o + 1:02d}")) for o in range(8)]
    (bundle,) = [b for b in bundles(route(batch)) if b["records"]]
    assert [offset for _, offset in bundle["src"]] == list(range(8))


def test_marks_are_the_newest_day_per_input_partition_and_the_same_in_every_bundle():
    batch = [msg(DECL, 0, 1, decl(1, date="2024-01-20")),
             msg(DECL, 0, 2, decl(2, date="2024-01-05")),  # older: the mark stays at the 20th
             msg(DECL, 1, 7, decl(3, date="2024-01-03", partner="FR")),  # not watched: still progress
             msg(DECL, 3, 1, b"not json"),  # invalid: says nothing about progress
             msg(STAT, 0, 4, stat(period="2024-01"))]
    got = bundles(route(batch))
    expected = {f"{DECL}:0": parse_json_line(batch[0].value).date.toordinal(),
                f"{DECL}:1": parse_json_line(batch[2].value).date.toordinal(),
                f"{STAT}:0": event_day(parse_json_line(batch[4].value))}
    assert all(b["marks"] == expected for b in got)


def test_a_batch_with_no_valid_record_sends_nothing_but_commits():
    batch = [msg(DECL, 2, 5, b"[1, 2]"), msg(DECL, 2, 6, b"{"), msg(DECL, 2, 7, None)]
    routed = route(batch)
    assert routed.bundles == []
    assert [m.offset for m, _ in routed.dead] == [5, 6, 7]
    assert routed.rejected == {"not_an_object": 1, "invalid_json": 2}
    assert routed.commit == {TopicPartition(DECL, 2): 8}


def test_not_watched_and_no_fx_rate_are_counted_apart():
    batch = [msg(DECL, 0, 0, decl(1, partner="FR")), msg(DECL, 0, 1, decl(2, hs="010121")),
             msg(DECL, 0, 2, decl(3, currency="XAU"))]
    routed = route(batch)
    assert routed.not_watched == {"not watched: partner": 1, "not watched: hs6": 1}
    assert [exc.key for _, exc in routed.dead] == ["no_fx_rate:currency"]
    assert routed.forwarded == 0 and all(not b["records"] for b in bundles(routed))


def test_commit_offsets_are_the_next_offset_per_input_partition():
    batch = [msg(DECL, 0, 4, decl(1)), msg(STAT, 0, 9, stat()), msg(DECL, 0, 5, b"bad"), msg(DECL, 3, 0, decl(2))]
    assert route(batch).commit == {
        TopicPartition(DECL, 0): 6, TopicPartition(STAT, 0): 10, TopicPartition(DECL, 3): 1}


# -- the loop: acknowledgements, then the commit --------------------------------------------------


class FakeConsumer:
    """Hands out prepared batches; records commits and the assignment."""

    def __init__(self, batches: list[list], assigned: set[TopicPartition]) -> None:
        self.batches = batches
        self.assigned = assigned
        self.commits: list[dict] = []
        self.unacknowledged_at_commit: list[int] = []
        self.stopped = False
        self.broker: Broker | None = None
        self.end: int | Exception = 10  # the broker's end offset of every partition (or its error)
        self.asked_end: list = []

    def subscribe(self, topics, listener):
        self.listener = listener

    async def start(self):
        pass

    async def stop(self):
        self.stopped = True

    async def getmany(self, *partitions, timeout_ms=0, max_records=None):
        if not self.batches:
            await asyncio.sleep(timeout_ms / 1000)  # as a real poll finding nothing
            return {}
        await asyncio.sleep(0)
        batch = self.batches.pop(0)[:max_records]
        out: dict = {}
        for m in batch:
            out.setdefault(TopicPartition(m.topic, m.partition), []).append(m)
        return out

    async def commit(self, offsets=None):
        self.unacknowledged_at_commit.append(sum(not f.done() for f in self.broker.acks))
        self.commits.append(dict(offsets))

    def assignment(self):
        return set(self.assigned)

    async def position(self, tp):
        return 3

    def highwater(self, tp):
        return 10 if tp.topic == DECL else None

    async def end_offsets(self, partitions):
        self.asked_end = list(partitions)
        if isinstance(self.end, Exception):
            raise self.end
        return {tp: self.end for tp in partitions}


class Broker:
    """Sends that the test acknowledges when it likes."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []
        self.acks: list[asyncio.Future] = []

    async def goods(self, **kwargs):
        return self._send("goods", kwargs)

    async def dead(self, **kwargs):
        return self._send("dead", kwargs)

    def _send(self, topic: str, kwargs: dict) -> asyncio.Future:
        self.sent.append((topic, kwargs))
        fut = asyncio.get_running_loop().create_future()
        self.acks.append(fut)
        return fut


def make(batches, assigned=None):
    consumer = FakeConsumer(batches, assigned if assigned is not None else {TopicPartition(DECL, p) for p in range(4)})
    broker = consumer.broker = Broker()
    metrics = WorkerMetrics()
    ingest = Ingest(SETTINGS, CONFIG, metrics, consumer, broker.goods, broker.dead)
    return ingest, consumer, broker, metrics


async def settle():
    for _ in range(20):
        await asyncio.sleep(0)


def test_input_offsets_are_committed_only_after_every_send_is_acknowledged():
    async def scenario():
        batch = [msg(DECL, 0, 0, decl(1)), msg(DECL, 0, 1, b"not json", key=b"854231"), msg(DECL, 1, 0, decl(2))]
        ingest, consumer, broker, metrics = make([])
        task = asyncio.create_task(ingest.handle(batch))
        await settle()
        assert [t for t, _ in broker.sent] == ["dead"] + ["goods"] * SETTINGS.partitions
        assert consumer.commits == [], "nothing is committed while sends are unacknowledged"
        for fut in broker.acks[:-1]:
            fut.set_result(None)
        await settle()
        assert consumer.commits == [], "one goods bundle is still unacknowledged"
        broker.acks[-1].set_result(None)
        await task
        assert consumer.unacknowledged_at_commit == [0]
        assert consumer.commits == [{TopicPartition(DECL, 0): 2, TopicPartition(DECL, 1): 1}]
        assert metrics.registry.get_sample_value("transitwatch_records_consumed_total", {"kind": "declarations"}) == 3
        assert metrics.registry.get_sample_value("transitwatch_records_rejected_total",
                                                 {"reason": "invalid_json"}) == 1

    asyncio.run(scenario())


def test_a_refused_send_stops_the_batch_uncommitted():
    async def scenario():
        ingest, consumer, broker, _ = make([])
        task = asyncio.create_task(ingest.handle([msg(DECL, 0, 0, decl(1))]))
        await settle()
        broker.acks[0].set_exception(RuntimeError("broker refused"))
        for fut in broker.acks[1:]:
            fut.set_result(None)
        with pytest.raises(RuntimeError, match="broker refused"):
            await task
        assert consumer.commits == []

    asyncio.run(scenario())


def test_run_sends_a_batch_the_broker_refused_again_and_commits_it_once():
    """A refused send is the batch's failure, not the worker's: run() goes on, sends the batch
    again (the detector knows the records it already has by their input offsets) and commits once."""
    async def scenario():
        batch = [msg(DECL, 0, 0, decl(1)), msg(DECL, 0, 1, b"not json"), msg(DECL, 1, 0, decl(2))]
        ingest, consumer, broker, metrics = make([batch])
        await ingest.start()
        waits: list[float] = []
        per_attempt = 1 + SETTINGS.partitions  # a dead letter and a bundle per goods partition

        async def sleep(seconds):
            waits.append(seconds)
            await asyncio.sleep(0)

        async def broker_side():
            while not consumer.commits:
                for i, fut in enumerate(broker.acks):
                    if not fut.done():
                        if i in (0, per_attempt):  # the first send of the first two attempts is refused
                            fut.set_exception(RuntimeError("NotEnoughReplicas"))
                        else:
                            fut.set_result(None)
                await asyncio.sleep(0)
            await ingest.stop()

        await asyncio.gather(ingest.run(sleep=sleep), broker_side())
        assert waits == [0.5, 1.0], "two failed attempts, a growing wait after each"
        assert consumer.commits == [{TopicPartition(DECL, 0): 2, TopicPartition(DECL, 1): 1}]
        sent = [orjson.loads(kw["value"]) for topic, kw in broker.sent if topic == "goods"]
        offsets = sorted(tuple(src) for b in sent for src in b["src"])
        assert offsets == sorted([(f"{DECL}:0", 0), (f"{DECL}:1", 0)] * 3), "the batch went out three times"
        assert metrics.registry.get_sample_value("transitwatch_batch_retries_total", {"stage": "ingest"}) == 2
        assert metrics.registry.get_sample_value("transitwatch_records_consumed_total",
                                                 {"kind": "declarations"}) == 3, "counted once, when it passed"

    asyncio.run(scenario())


def test_dead_letters_carry_the_message_and_where_it_came_from():
    async def scenario():
        ingest, consumer, broker, _ = make([])
        task = asyncio.create_task(ingest.handle([msg(STAT, 3, 17, b"[1]", key=b"k")]))
        await settle()
        (topic, sent), = broker.sent
        assert topic == "dead" and sent["key"] == b"k" and sent["value"] == b"[1]"
        assert dict(sent["headers"]) == {"reason": b"not_an_object", "message": sent["headers"][1][1],
                                         "source_topic": STAT.encode(), "source_partition": b"3",
                                         "source_offset": b"17"}
        assert b"JSON object" in dict(sent["headers"])["message"]
        broker.acks[0].set_result(None)
        await task

    asyncio.run(scenario())


def test_a_revocation_waits_for_the_batch_in_flight_to_be_committed():
    async def scenario():
        ingest, consumer, broker, _ = make([])
        await ingest.start()
        await consumer.listener.on_partitions_assigned({TopicPartition(DECL, 0)})
        assert ingest.joined
        async with ingest.lock:  # as run() does around a batch
            batch = asyncio.create_task(ingest.handle([msg(DECL, 0, 0, decl(1))]))
            revoke = asyncio.create_task(consumer.listener.on_partitions_revoked({TopicPartition(DECL, 0)}))
            await settle()
            assert not ingest.joined and not revoke.done()
            for fut in broker.acks:
                fut.set_result(None)
            await batch
            assert len(consumer.commits) == 1 and not revoke.done()
        await revoke
        assert consumer.unacknowledged_at_commit == [0]

    asyncio.run(scenario())


def test_take_fills_a_batch_up_to_batch_size():
    async def scenario():
        first = [msg(DECL, 0, o, decl(o)) for o in range(3)]
        second = [msg(DECL, 0, o, decl(o)) for o in range(3, 6)]
        ingest, consumer, _, _ = make([first, second])
        ingest.settings = SETTINGS.model_copy(update={"ingest_batch_seconds": 3600.0})  # time plays no part
        taken = await ingest.take()
        assert [m.offset for m in taken] == [0, 1, 2, 3, 4], "batch_size is 5: two fetches, cut at 5"

    asyncio.run(scenario())


def test_run_skips_partitions_moved_away_and_stop_leaves_the_group():
    async def scenario():
        batch = [msg(DECL, 0, o, decl(o)) for o in range(3)] + [msg(DECL, 2, 0, decl(9))]
        ingest, consumer, broker, _ = make([batch], assigned={TopicPartition(DECL, 0)})
        await ingest.start()

        async def acknowledge():
            while not consumer.commits:
                for fut in broker.acks:
                    if not fut.done():
                        fut.set_result(None)
                await asyncio.sleep(0)
            await ingest.stop()

        await asyncio.gather(ingest.run(), acknowledge())
        assert consumer.commits == [{TopicPartition(DECL, 0): 3}], "partition 2 is not ours: not sent, not committed"
        records = [r for _, sent in broker.sent for r in orjson.loads(sent["value"])["src"]]
        assert sorted(records) == [[f"{DECL}:0", o] for o in range(3)]
        assert consumer.stopped and not ingest.joined and not ingest.started

    asyncio.run(scenario())


def test_lag_is_highwater_minus_position_by_kind():
    async def scenario():
        ingest, consumer, _, _ = make([], assigned={TopicPartition(DECL, 0), TopicPartition(DECL, 1),
                                                    TopicPartition(STAT, 0)})
        assert await ingest.lag() == {"declarations": 0, "monthly": 0}, "not started: nothing known"
        await ingest.start()
        assert await ingest.lag() == {"declarations": 14, "monthly": 0}, "no highwater yet for monthly"

    asyncio.run(scenario())


# -- input limits and poison messages --------------------------------------------------------------


def with_limits(**limits) -> WatchConfig:
    return dataclasses.replace(CONFIG, input=InputLimits(**limits))


@pytest.mark.parametrize("value", [
    stat(period="0000-01"), stat(period="9999-12"), decl(1, date="9999-12-31"), decl(1, date="0001-01-01"),
    decl(1, date="1989-12-31"), decl(1, date="2025-07-01"),  # today 2024-06-01, 12 months ahead: 2025-06 last
])
def test_a_record_outside_the_domain_of_time_is_a_dead_letter_and_moves_no_mark(value):
    batch = [msg(DECL, 0, 0, decl(2, date="2024-05-30")), msg(DECL, 0, 1, value)]
    routed = route(batch)
    assert [(m.offset, exc.key) for m, exc in routed.dead] == [(1, "date_out_of_range")]
    assert routed.rejected == {"date_out_of_range": 1} and routed.forwarded == 1
    assert all(b["marks"] == {f"{DECL}:0": dt.date(2024, 5, 30).toordinal()} for b in bundles(routed))


def test_the_domain_of_time_follows_the_clock_passed_in():
    late = [msg(DECL, 0, 0, decl(1, date="2025-07-01"))]
    assert route_batch(late, SETTINGS, CONFIG, today=dt.date(2024, 6, 1)).rejected == {"date_out_of_range": 1}
    assert route_batch(late, SETTINGS, CONFIG, today=dt.date(2024, 7, 1)).forwarded == 1


def test_a_message_over_max_line_bytes_is_rejected_unread():
    config = with_limits(max_line_bytes=300)
    long_but_valid = orjson.dumps({**orjson.loads(decl(1)), "consignee": "x" * 300})
    routed = route([msg(DECL, 0, 0, long_but_valid), msg(DECL, 0, 1, b"{" * 400), msg(DECL, 0, 2, decl(2))],
                   config)
    assert [exc.key for _, exc in routed.dead] == ["line_too_long", "line_too_long"]
    assert routed.forwarded == 1


@pytest.mark.parametrize("value", [b"[" * 20_000 + b"]" * 20_000, b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
                                   b'{"a":' * 20_000])
def test_deep_nesting_is_a_reject_not_a_crash(value):
    routed = route([msg(DECL, 0, 0, value)])
    assert [exc.key for _, exc in routed.dead] == ["too_deep"]


def test_nesting_within_max_depth_is_read_by_the_contract():
    nested = orjson.dumps({**orjson.loads(decl(1)), "extra": [[[1]]]})
    assert route([msg(DECL, 0, 0, nested)], with_limits(max_depth=4)).forwarded == 1
    assert route([msg(DECL, 0, 0, nested)], with_limits(max_depth=3)).rejected == {"too_deep": 1}


def test_a_record_too_large_to_forward_is_a_dead_letter():
    huge = orjson.dumps({**orjson.loads(decl(1)), "consignee": "x" * MAX_RECORD_BYTES})
    routed = route([msg(DECL, 0, 0, huge), msg(DECL, 0, 1, decl(2))])
    assert [exc.key for _, exc in routed.dead] == ["record_too_large"] and routed.forwarded == 1


def test_bundles_over_the_message_bound_are_split_in_order_and_only_the_last_has_marks():
    text = "y" * 20_000
    batch = [msg(DECL, 0, o, orjson.dumps({**orjson.loads(decl(o)), "consignee": f"{o}{text}"})) for o in range(80)]
    routed = route(batch)
    partition = goods_partition("854231", SETTINGS.partitions)
    mine = [orjson.loads(b) for p, b in routed.bundles if p == partition]
    assert len(mine) > 2, "80 records of 20 kB do not fit in one message"
    assert all(len(b) <= MAX_MESSAGE_BYTES for _, b in routed.bundles)
    assert [o for b in mine for _, o in b["src"]] == list(range(80))
    assert [bool(b["marks"]) for b in mine] == [False] * (len(mine) - 1) + [True]
    assert sorted(p for p, _ in routed.bundles if p != partition) == [p for p in range(4) if p != partition]


def test_a_message_whose_routing_raises_is_a_poison_dead_letter_and_the_batch_goes_on(monkeypatch):
    import transitwatch.streams.ingest as ingest_module

    real = ingest_module.route_reason

    def explode(config, reporter, partner, flow, hs6, currency):
        if hs6 == "847150":
            raise ZeroDivisionError("boom in routing")
        return real(config, reporter, partner, flow, hs6, currency)

    monkeypatch.setattr(ingest_module, "route_reason", explode)

    async def scenario():
        ingest, consumer, broker, metrics = make([])
        batch = [msg(DECL, 1, 4, decl(1)), msg(DECL, 1, 5, decl(2, hs="847150"), key=b"847150"),
                 msg(DECL, 1, 6, decl(3))]
        task = asyncio.create_task(ingest.handle(batch))
        await settle()
        for fut in broker.acks:
            fut.set_result(None)
        routed = await task
        (topic, sent), = [(t, kw) for t, kw in broker.sent if t == "dead"]
        headers = dict(sent["headers"])
        assert sent["value"] == batch[1].value and sent["key"] == b"847150"
        assert headers == {"reason": b"poison", "stage": b"ingest", "error_type": b"ZeroDivisionError",
                           "message": b"boom in routing", "source_topic": DECL.encode(),
                           "source_partition": b"1", "source_offset": b"5"}
        assert routed.forwarded == 2 and consumer.commits == [{TopicPartition(DECL, 1): 7}]
        assert metrics.registry.get_sample_value("transitwatch_poison_records_total", {"stage": "ingest"}) == 1

    asyncio.run(scenario())


def test_a_dead_letter_of_a_huge_message_is_a_prefix_within_the_bound():
    async def scenario():
        ingest, consumer, broker, _ = make([])
        value = b'{"declaration_id": "' + b"z" * (5 << 20) + b'"}'  # over the default 1 MB max_line_bytes
        task = asyncio.create_task(ingest.handle([msg(DECL, 0, 0, value, key=b"k" * (100 << 10))]))
        await settle()
        for fut in broker.acks:
            fut.set_result(None)
        await task
        (_, sent), = [(t, kw) for t, kw in broker.sent if t == "dead"]
        headers = dict(sent["headers"])
        assert headers["reason"] == b"line_too_long" and headers["truncated"] == b"true"
        assert int(headers["value_bytes"]) == len(value) and value.startswith(sent["value"])
        total = len(sent["value"]) + len(sent["key"]) + sum(len(k) + len(v) for k, v in sent["headers"])
        assert total <= MAX_MESSAGE_BYTES

    asyncio.run(scenario())


# -- idleness: only a live reader can say an input partition has nothing more -----------------------


def test_a_reader_reports_the_input_partitions_it_holds_at_their_end_and_for_how_long():
    async def scenario():
        at_end, behind = TopicPartition(DECL, 0), TopicPartition(DECL, 1)
        ingest, consumer, broker, _ = make([], assigned={at_end, behind, TopicPartition(STAT, 0)})
        consumer.position = lambda tp: asyncio.sleep(0, 10 if tp == at_end else 3)  # highwater is 10
        await ingest.start()
        first = await ingest.idle_report()
        assert first == {f"{DECL}:0": 0.0}, "behind, or no highwater known (monthly): not idle"
        await asyncio.sleep(0.2)
        assert (await ingest.idle_report())[f"{DECL}:0"] >= 0.2
        task = asyncio.create_task(ingest.report_idle())
        await settle()
        for fut in broker.acks:
            fut.set_result(None)
        await task
        sent = [orjson.loads(kw["value"]) for _, kw in broker.sent]
        assert sorted(kw["partition"] for _, kw in broker.sent) == list(range(SETTINGS.partitions))
        assert all(b["records"] == [] and b["marks"] == {} and list(b["idle"]) == [f"{DECL}:0"] for b in sent)
        await ingest.consumer.listener.on_partitions_revoked({at_end})
        assert (await ingest.idle_report())[f"{DECL}:0"] == 0.0, "taken again: idle only from now"

    asyncio.run(scenario())


def test_a_reader_that_has_not_fetched_for_a_while_asks_the_broker_before_it_says_idle():
    """The high watermark is the last fetch's: after a stall (a long detector batch on a starved
    machine) a reader is "at the end" of a partition the producer went on writing to. Reported
    idle, the goods partitions would leave it out of the watermark and close a month before its
    records came (a CI run saw two declarations of a month go late that way)."""
    import time

    async def scenario():
        tp = TopicPartition(DECL, 0)
        ingest, consumer, _, _ = make([], assigned={tp})
        consumer.position = lambda tp: asyncio.sleep(0, 10)  # at the last fetch's high watermark
        await ingest.start()
        assert await ingest.idle_report() == {f"{DECL}:0": 0.0}
        assert consumer.asked_end == [], "just read: cannot make anyone idle yet, the broker is not asked"
        ingest._last_read[tp] = time.monotonic() - 4.0  # silent for 4 s (idle_seconds 5, reports trusted 3 s)
        consumer.end = 15  # the producer wrote on
        assert await ingest.idle_report() == {}, "behind the broker's end: not idle"
        assert consumer.asked_end == [tp]
        consumer.end = KafkaError("Unable to get cluster metadata over all known brokers")
        assert await ingest.idle_report() == {}, "cannot be checked: not claimed idle"
        consumer.end = 10
        assert (await ingest.idle_report())[f"{DECL}:0"] >= 4.0, "really at its end: idle"

    asyncio.run(scenario())


def test_a_silent_input_partition_holds_the_watermark_back_until_its_reader_says_it_is_idle():
    from transitwatch.streams.ingest import IDLE_REPORT_TRUSTED
    from transitwatch.streams.service import Marks

    marks = Marks()
    marks.hear({"in:0": 100, "in:1": 200}, now=0.0)
    assert marks.watermark(now=1.0, idle_seconds=5) == 100
    assert marks.watermark(now=60.0, idle_seconds=5) == 100, "silence (a dead or rebalancing reader) is not idleness"
    marks.hear({"in:1": 210}, now=60.0, idle={"in:0": 3.0, "in:1": 0.0})
    assert marks.watermark(now=61.0, idle_seconds=5) == 100, "idle for 4 s only"
    assert marks.watermark(now=62.5, idle_seconds=5) == 210, "idle for 5.5 s, as its reader said 2.5 s ago"
    assert marks.watermark(now=60.0 + IDLE_REPORT_TRUSTED + 0.1, idle_seconds=5) == 100, "a report goes stale"
    marks.hear({}, now=63.0, idle={"in:0": 10.0, "in:1": 7.0})
    assert marks.watermark(now=63.0, idle_seconds=5) == 210, "all idle: everything has been delivered"
    marks.hear({"in:0": 150}, now=64.0)
    assert marks.watermark(now=64.0, idle_seconds=5) == 150, "records read there: no longer idle"
