"""Alert delivery: ``transitwatch notify`` reads the alerts topic and sends Slack, email and
Alertmanager notifications, with Alertmanager's routing, grouping and silences.

The pieces, from the pure core outwards:

- ``intake``: what an alert message must be; the reasons a message is skipped.
- ``matchers``: labels of an alert, Alertmanager matchers and durations.
- ``config``: the TOML routing tree and receivers, validated at start-up.
- ``silences`` and ``deliverylog``: the two pieces of state, as in-memory views (the delivery
  log holds each send's intent and outcome).
- ``router``: grouping, de-duplication, updates, silences and retries, with an injected clock.
- ``content``, ``chart``, ``slack``, ``mail``, ``alertmanager``: what is sent and how.
- ``kafkastate``: the state kept on compacted Kafka topics, so it survives restarts.
- ``service``: the Kafka loop, offset commits and the HTTP endpoints; ``redeliver``; ``cli``.

See ``docs/notifications.md``.
"""
