"""tickgate-load: load-test a tickgate deployment through its public interfaces only.

It imports nothing from the gateway's own packages, so it runs against any
deployment: the WebSocket protocol, the HTTP endpoints and the Kafka topics
are all it needs. See docs/load-testing.md.
"""
