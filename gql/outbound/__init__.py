"""Streaming the log out: durable named consumers and the sinks they deliver to.

A consumer (gql/outbound/consumer.py) reads the log's safe prefix after its position, hands
the events its filter takes to a sink (NATS JetStream in jetstream.py, signed webhooks in
webhooks.py) and moves its position only after the sink confirmed them: every event at least
once, identified by its event id. `ordergraph relay …` runs one as its own process
(commands.py); the server runs those its settings name beside itself (beside.py).
"""
