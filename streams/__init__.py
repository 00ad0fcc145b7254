"""The transitwatch service: Faust app, records, topics, agents, sinks, metrics, settings, CLI."""
