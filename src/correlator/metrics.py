"""Every Prometheus metric of correlator, in one place.

Components take a :class:`Metrics` and update it once per batch, never once
per event. The registry is injectable (``Metrics(registry=...)``) so tests
and embedded uses get their own; the daemon serves ``metrics.registry`` on
``/metrics``. To add a metric, add an attribute here with a
``correlator_``-prefixed name and the conventional suffix (``_total`` for
counters, ``_seconds`` for durations).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The metric families, registered on ``registry`` (a fresh one when not given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # Outbox: what counts as emitted.
        self.outbox_events = Counter(
            "correlator_outbox_events_total",
            "Incident events written to the outbox (emitted).",
            registry=r,
        )
        self.outbox_unrouted = Counter(
            "correlator_outbox_unrouted_events_total",
            "Incident events that no sink route matched.",
            registry=r,
        )
        # Delivery, per sink.
        self.sink_queue_depth = Gauge(
            "correlator_sink_queue_depth",
            "Incident events in the outbox not yet delivered to the sink.",
            ["sink"],
            registry=r,
        )
        self.sink_delivered = Counter(
            "correlator_sink_events_delivered_total",
            "Incident events the sink accepted.",
            ["sink"],
            registry=r,
        )
        self.sink_attempts = Counter(
            "correlator_sink_delivery_attempts_total",
            "Batches offered to the sink (write_batch calls), retries included.",
            ["sink"],
            registry=r,
        )
        self.sink_failures = Counter(
            "correlator_sink_delivery_failures_total",
            "Failed deliveries by reason (timeout, connect, http_5xx, http_429, http_4xx, ...).",
            ["sink", "reason"],
            registry=r,
        )
        self.sink_dead_letters = Counter(
            "correlator_sink_dead_letters_total",
            "Incident events the sink rejected for good, moved to the dead-letter table.",
            ["sink"],
            registry=r,
        )
        self.sink_up = Gauge(
            "correlator_sink_up",
            "1 when the sink's last healthcheck or delivery succeeded, else 0.",
            ["sink"],
            registry=r,
        )
        self.sink_last_success = Gauge(
            "correlator_sink_last_success_timestamp_seconds",
            "Unix time of the sink's last successful delivery.",
            ["sink"],
            registry=r,
        )
        self.sink_batch_seconds = Histogram(
            "correlator_sink_batch_duration_seconds",
            "Time of one successful write_batch.",
            ["sink"],
            buckets=_DELIVERY_BUCKETS,
            registry=r,
        )
        # The daemon: intake, first level, correlation, lifecycle.
        self.up = Gauge("correlator_up", "1 while the daemon runs.", registry=r)
        self.received = Counter(
            "correlator_events_received_total",
            "Input rows received (alerts, or whole frames that could not be split).",
            ["source", "format"],
            registry=r,
        )
        self.rejected = Counter(
            "correlator_events_rejected_total",
            "Input rows refused, by reason (see correlator.rejects.REASONS).",
            ["reason"],
            registry=r,
        )
        self.dropped = Counter(
            "correlator_events_dropped_total",
            "Accepted alerts dropped, by rule: a drop rule's name, or informational /"
            " orphan_resolve for correlation's built-in drops.",
            ["rule"],
            registry=r,
        )
        self.deduplicated = Counter(
            "correlator_events_deduplicated_total",
            "Accepted alerts that were resends within the dedup window.",
            registry=r,
        )
        self.suppressed = Counter(
            "correlator_events_suppressed_total",
            "Accepted alerts held back, by rule: maintenance, flap, threshold, inhibit and"
            " pair rules.",
            ["rule"],
            registry=r,
        )
        self.events_by_significance = Counter(
            "correlator_events_by_significance_total",
            "Accepted alerts by ITIL significance (informational, warning, exception).",
            ["significance"],
            registry=r,
        )
        self.incidents = Counter(
            "correlator_incident_events_total",
            "Incident events emitted (open, update, resolve).",
            ["event"],
            registry=r,
        )
        self.incidents_open = Gauge("correlator_incidents_open", "Incidents open now.", registry=r)
        self.batch_seconds = Histogram(
            "correlator_batch_duration_seconds",
            "Time to normalize, correlate and log one batch.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.ingest_queue_depth = Gauge(
            "correlator_ingest_queue_depth",
            "Decoded inputs waiting for the correlation loop.",
            registry=r,
        )
        self.reloads = Counter(
            "correlator_reloads_total",
            "Rule and topology reloads, by result (success, failure).",
            ["result"],
            registry=r,
        )
        self.reload_timestamp = Gauge(
            "correlator_reload_timestamp_seconds",
            "Unix time of the last reload, by result.",
            ["result"],
            registry=r,
        )
        self.errors = Counter(
            "correlator_errors_total",
            "Unexpected failures by stage (decode, correlate, eventlog); the daemon keeps running.",
            ["stage"],
            registry=r,
        )
