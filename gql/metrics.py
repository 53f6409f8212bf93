"""The process's Prometheus metrics, recorded where things happen and served at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Histogram(
    "ordergraph_http_request_seconds", "HTTP requests by route and status",
    ["method", "route", "status"],
)
APPENDS = Counter(
    "ordergraph_appends_total",
    "Appends by event type and outcome: appended, deduplicated, or the error code",
    ["type", "outcome"],
)
COMPILED = Counter(
    "ordergraph_compiled_operations_total",
    "Operations run as compiled statements: reads answered, or failed and answered by the "
    "resolvers; append mutations run",
    ["operation", "outcome"],
)
SUBSCRIPTIONS = Gauge("ordergraph_subscriptions", "Active GraphQL subscriptions")
DELIVERED = Counter("ordergraph_events_delivered_total", "Events delivered to subscriptions")
RENDERED = Counter(
    "ordergraph_live_renders_total",
    "Statements that rendered compiled subscription payloads: one per read of the log and "
    "distinct selection (live), or per replay page",
    ["source"],
)
LOG_READS = Counter(
    "ordergraph_live_log_reads_total",
    "Reads of the log by the live hub: one statement per doorbell, follow-up ring or safety "
    "poll while anyone subscribes, however many subscribe",
)
DOORBELL_CHECKS = Counter(
    "ordergraph_doorbell_checks_total",
    "Snapshot checks by the listener's follow-up (has every transaction running at a "
    "notification ended?): one statement each",
)
LISTENER_UP = Gauge("ordergraph_listener_connected", "1 while the LISTEN connection is up")
DATABASE_UP = Gauge("ordergraph_database_up",
                    "0 from the first request that found the database unavailable until a probe "
                    "finds it back, else 1")
HTTP_REFUSED = Counter(
    "ordergraph_http_refused_total",
    "Connections refused or closed before their request was read: too many connections, "
    "headers or body too slow, headers too large",
    ["reason"],
)
REDIS_ROUND_TRIPS = Counter(
    "ordergraph_rate_limit_redis_round_trips_total",
    "Script calls that charged rate-limit counters in Redis (each takes a lease)",
)
RELAYED = Counter(
    "ordergraph_relay_events_total",
    "Events a durable consumer handed out: delivered (confirmed by its sink), parked, replayed",
    ["consumer", "outcome"],
)
CONSUMER_LAG_EVENTS = Gauge(
    "ordergraph_consumer_lag_events", "Events after a durable consumer's position that it takes",
    ["consumer"],
)
CONSUMER_LAG_SECONDS = Gauge(
    "ordergraph_consumer_lag_seconds",
    "Age of the oldest event a durable consumer has yet to deliver (0 when caught up)",
    ["consumer"],
)
REPLICA_LAG_SECONDS = Gauge(
    "ordergraph_replica_lag_seconds",
    "How long ago the primary first stood beyond what a read replica has replayed (0: caught up)",
    ["replica"],
)
REPLICA_LAG_BYTES = Gauge(
    "ordergraph_replica_lag_bytes", "WAL bytes a read replica has yet to replay", ["replica"],
)
REPLICA_IN_ROTATION = Gauge(
    "ordergraph_replica_in_rotation", "1 while a read replica answers reads, else 0", ["replica"],
)
READS_SERVED = Counter(
    "ordergraph_reads_served_total",
    "GraphQL reads by who answered them: replica, or primary (no replica in the rotation, or "
    "none had replayed the request's position token within the wait)",
    ["served_by"],
)
