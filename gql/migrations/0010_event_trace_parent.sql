-- 0010: each event keeps the W3C traceparent of the span that appended it (null when the
-- writer was not traced), so that what the event causes later (relays, live deliveries)
-- continues the appending request's trace.

alter table order_events add column if not exists trace_parent text
    constraint order_events_trace_parent_valid
    check (trace_parent ~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$');
