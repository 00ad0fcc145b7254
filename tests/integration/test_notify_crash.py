"""The notifier SIGKILLed again and again at random points while it delivers a stream of alerts.

A real ``transitwatch notify`` process against the real Kafka broker, the Slack stand-in and
aiosmtpd (each answering 50 ms after it has taken a message, as a real receiver does). Each
round produces a batch of alerts, starts the notifier, waits until it is delivering, waits a
random (seeded) moment and kills it with SIGKILL; a last notifier finishes and stops with
SIGTERM. Then:

- no receiver got any alert twice (0 duplicate deliveries to the webhook or the SMTP server);
- every alert reached every receiver, or is on the undelivered topic as ``unknown_outcome``
  (the notifier died after recording the intent and before recording the outcome); how many
  of those the receiver had got (the window that cannot be closed) and how many it had not
  is printed;
- the undelivered topic holds each alert version and receiver once;
- hostile messages in the stream (not JSON, a period of 0000-01 and of 9999-12, an absurd
  amount, 300 kB) are on the dead-letter topic with their reason, and never stopped a notifier
  (each round's notifier became ready and delivered). The dead-letter topic is at least once:
  a message skipped again after a crash before its offset was committed is there again;
- an operator resolves the unknown outcomes with ``transitwatch redeliver`` (``--unknown
  resend`` for those the receiver lacks, ``--unknown drop`` for the others), after which
  every receiver has every alert exactly once.

The time from starting a notifier after a kill to its first delivery is printed: most of it is
the consumer group waiting for the killed member's session to expire
(``TRANSITWATCH_NOTIFY_SESSION_TIMEOUT``); ``TRANSITWATCH_NOTIFY_KILL_MEMBERSHIP=static`` runs the
notifier with static group membership (``TRANSITWATCH_NOTIFY_GROUP_INSTANCE_ID``) instead, and a
restarted notifier takes its partition back at once. CI runs ``TRANSITWATCH_NOTIFY_KILLS`` kills
(4 by default, well under a minute on 2 cores); the figures in ``docs/notifications.md`` come
from 20 kills::

    CI=true TRANSITWATCH_NOTIFY_KILLS=20 TRANSITWATCH_NOTIFY_KILL_SEED=7 PYTHONPATH=$PWD \\
        python -m pytest -s tests/integration/test_notify_crash.py
"""

from __future__ import annotations

import collections
import os
import random
import signal
import statistics
import time

import orjson
import pytest

from transitwatch.streams.cli import main
from tests.integration.notify_kafka import (
    committed,
    http_status,
    make_alert,
    produce,
    read_topic,
    settings_for,
    start_subprocess,
    topics,
)
from tests.integration.notify_servers import SlackStandIn, SmtpServer, wait_for
from tests.integration.test_notify_kafka import email_receiver, slack_receiver, write_config

pytestmark = pytest.mark.integration

KILLS = int(os.environ.get("TRANSITWATCH_NOTIFY_KILLS", "4"))
SEED = int(os.environ.get("TRANSITWATCH_NOTIFY_KILL_SEED", "20240613"))
#: "dynamic" (the default settings): each restart waits for the killed member's session to expire;
#: "static": the notifier runs with TRANSITWATCH_NOTIFY_GROUP_INSTANCE_ID and each restart takes
#: the partitions back at once.
MEMBERSHIP = os.environ.get("TRANSITWATCH_NOTIFY_KILL_MEMBERSHIP", "dynamic")
PER_ROUND = 4
LATENCY = 0.05


def _config(tmp_path, smtp: SmtpServer):
    return write_config(tmp_path / "notify.toml", f"""
[route]
receiver = "desk"
group_by = ["..."]
group_wait = "50ms"
group_interval = "100ms"
repeat_interval = "1h"
  [[route.routes]]
  receiver = "mail"
  continue = true
  [[route.routes]]
  receiver = "desk"
{slack_receiver(timeout="5s")}
{email_receiver(smtp)}
""")


def _mail_ids(smtp: SmtpServer) -> list[str]:
    return [i for _, _, m in smtp.messages for i in str(m["X-Transitwatch-Alerts"]).split(", ")]


def test_sigkill_at_random_points_never_delivers_twice_and_surfaces_what_it_cannot_know(kafka, tmp_path, monkeypatch,
                                                                                       capsys):
    rng = random.Random(SEED)
    slack = SlackStandIn(latency=LATENCY).start()
    smtp = SmtpServer(tmp_path, latency=LATENCY).up()
    name = f"crash{SEED}"
    try:
        config = _config(tmp_path, smtp)
        secrets = {"slack_desk": slack.url, "smtp_password": smtp.password}
        assert MEMBERSHIP in ("static", "dynamic"), MEMBERSHIP
        settings = settings_for(kafka, name, secrets,
                                notify_group_instance_id=f"{name}-0" if MEMBERSHIP == "static" else None)
        port = settings.notify_web_port
        log = tmp_path / "notifier.log"
        alerts: list[dict] = []
        hostile = {b"{not json": "invalid_json", orjson.dumps(make_alert(period="0000-01")): "date_out_of_range",
                   orjson.dumps(make_alert(period="9999-12")): "date_out_of_range",
                   orjson.dumps(make_alert(observed_value=1.7e308)): "invalid_number",
                   orjson.dumps(make_alert(explanation="x" * 300_000)): "too_large"}
        started = time.monotonic()
        restarts: list[float] = []  # from starting a notifier after a kill to its first delivery
        for round_ in range(KILLS + 1):
            batch = [make_alert(period=f"20{10 + round_ % 10}-{m:02d}") for m in range(1, PER_ROUND + 1)]
            alerts += batch
            produce(settings, [*batch[:2], *(list(hostile) if round_ == 0 else []), *batch[2:]])
            taken = len(slack.posts) + len(smtp.messages)
            launched = time.monotonic()
            proc = start_subprocess(config, settings, log)
            try:
                wait_for(lambda: http_status(port, "/ready") == 200, timeout=60, what=f"/ready (log: {log})")
                wait_for(lambda: len(slack.posts) + len(smtp.messages) > taken, timeout=30, interval=0.01,
                         what=f"a delivery in round {round_} (log: {log})")
                if round_ > 0:
                    restarts.append(time.monotonic() - launched)
                if round_ == KILLS:
                    break
                time.sleep(rng.uniform(0.0, 0.6))
                proc.send_signal(signal.SIGKILL)
                assert proc.wait(10) == -signal.SIGKILL
            finally:
                if round_ < KILLS and proc.poll() is None:
                    proc.kill()
        try:
            wait_for(lambda: committed(settings) == len(alerts) + len(hostile), timeout=90,
                     what=f"the last commit (log: {log})")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, "SIGTERM stops the notifier cleanly"
        finally:
            if proc.poll() is None:
                proc.kill()
        killed_for = time.monotonic() - started

        dead = read_topic(settings, settings.dead_letter_topic)
        by_offset = collections.defaultdict(set)
        for m in dead:
            by_offset[dict(m.headers)["source_offset"]].add(dict(m.headers)["reason"].decode())
        assert sorted(r for reasons in by_offset.values() for r in reasons) == sorted(hostile.values()), by_offset
        assert len(dead) <= len(hostile) * (KILLS + 1)
        received = {"desk": collections.Counter(slack.alert_ids()), "mail": collections.Counter(_mail_ids(smtp))}
        undelivered = read_topic(settings, settings.undelivered_topic)
        keys = [m.key.decode() for m in undelivered]
        assert len(keys) == len(set(keys)), f"duplicate records on the undelivered topic: {keys}"
        assert all(dict(m.headers)["outcome"] == b"unknown" for m in undelivered), "no receiver was ever down"
        for receiver, counts in received.items():
            twice = [k for k, v in counts.items() if v > 1]
            assert not twice, f"{receiver} got these alerts more than once: {twice}"
            assert set(counts) <= {a["alert_id"] for a in alerts}
        window = {"desk": [], "mail": []}
        not_reached = {"desk": [], "mail": []}
        for a in alerts:
            for receiver, counts in received.items():
                key = f"{receiver}|{a['alert_id']}|final"
                if key in keys:
                    (window if counts[a["alert_id"]] else not_reached)[receiver].append(a["alert_id"])
                else:
                    assert counts[a["alert_id"]] == 1, f"{a['alert_id']} never reached {receiver} and is not surfaced"
        with capsys.disabled():
            print(f"\nnotifier SIGKILL test (seed {SEED}, {MEMBERSHIP} membership): {KILLS} kills, "
                  f"{len(alerts)} alerts x 2 receivers in "
                  f"{killed_for:.0f} s; duplicate deliveries: 0; duplicate undelivered records: 0; unknown outcomes: "
                  f"{len(keys)} (receiver had it: {sum(map(len, window.values()))}, "
                  f"receiver had not: {sum(map(len, not_reached.values()))}); restart to first delivery: "
                  f"median {statistics.median(restarts or [0]):.1f} s, max {max(restarts or [0]):.1f} s")

        # The operator's decision, with the command line: resend what a receiver lacks, drop the rest.
        for key, value in topics(name).items():
            monkeypatch.setenv(f"TRANSITWATCH_{key.upper()}", value)
        monkeypatch.setenv("TRANSITWATCH_SECRETS__SLACK_DESK", slack.url)
        monkeypatch.setenv("TRANSITWATCH_SECRETS__SMTP_PASSWORD", smtp.password)
        broker = ["--config", str(config), "--broker", settings.broker]
        for receiver in ("desk", "mail"):
            for choice, ids in (("resend", not_reached[receiver]), ("drop", window[receiver])):
                if ids:
                    picked = [x for i in ids for x in ("--alert", i)]
                    assert main(["redeliver", *broker, "--receiver", receiver, "--unknown", choice, *picked]) == 0
        assert main(["redeliver", "--list", "--broker", settings.broker]) == 0
        assert "undelivered alerts (0)" in capsys.readouterr().out
        received = {"desk": collections.Counter(slack.alert_ids()), "mail": collections.Counter(_mail_ids(smtp))}
        for receiver, counts in received.items():
            assert counts == {a["alert_id"]: 1 for a in alerts}, f"{receiver} after the operator's decisions"
    finally:
        slack.stop()
        smtp.down()
