"""Prometheus metrics the core records; ``bot`` serves them on ``/metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

REQUESTS = Counter(
    "bot_requests",
    "Requests handled, by intent and outcome (done, failed, moderated, refused, invalid, busy, paused, "
    "rate_limited).",
    ["intent", "outcome"],
    registry=REGISTRY,
)
TIME_TO_FIRST_TEXT = Histogram(
    "bot_time_to_first_text_seconds",
    "From a request reaching the core to its first streamed text.",
    ["intent"],
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "bot_job_duration_seconds",
    "From a job starting (after any queueing) to its last part.",
    ["intent"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200),
    registry=REGISTRY,
)
PROVIDER_ERRORS = Counter(
    "bot_provider_errors",
    "Generations that failed, by service and kind of error.",
    ["service", "kind"],
    registry=REGISTRY,
)
SPEND = Counter(
    "bot_spend_usd",
    "Money charged, by scope and service.",
    ["scope", "service"],
    registry=REGISTRY,
)
JOBS = Gauge("bot_jobs", "Jobs by state (running, queued).", ["state"], registry=REGISTRY)
