"""The router's Prometheus metrics (``prometheus_client``), a subscriber of its lifecycle hooks."""

from __future__ import annotations

from functools import lru_cache

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from .records import SavingsRecord

__all__ = ["RouterMetrics", "default_metrics"]


class RouterMetrics:
    """The router's counters and histograms, registered once per registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry or REGISTRY
        self.requests = Counter(
            "resgate_requests", "Requests seen by the router", ["family", "status"], registry=registry
        )
        self.images = Counter(
            "resgate_images", "Images routed, by class", ["family", "class_name", "source"], registry=registry
        )
        self.tokens = Counter(
            "resgate_visual_tokens", "Visual tokens (baseline, routed, saved)", ["family", "kind"], registry=registry
        )
        self.flops_saved = Counter(
            "resgate_prefill_flops_saved", "Estimated prefill FLOPs saved", ["family"], registry=registry
        )
        self.fallbacks = Counter(
            "resgate_fallbacks",
            "Requests sent at the baseline because the gate failed",
            ["family", "reason"],
            registry=registry,
        )
        self.errors = Counter("resgate_errors", "Requests that failed", ["family", "error"], registry=registry)
        self.gate_seconds = Histogram(
            "resgate_gate_latency_seconds",
            "Gate latency per request",
            ["family"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

    def observe(self, record: SavingsRecord) -> None:
        family, status = record.family, str(record.status)
        self.requests.labels(family, status).inc()
        for image in record.images:
            self.images.labels(family, str(image.class_name), image.source).inc()
        for kind, value in (("baseline", record.baseline_tokens), ("routed", record.routed_tokens)):
            if value > 0:
                self.tokens.labels(family, kind).inc(value)
        if record.saved_tokens > 0:
            self.tokens.labels(family, "saved").inc(record.saved_tokens)
        if record.flops_saved and record.flops_saved > 0:
            self.flops_saved.labels(family).inc(record.flops_saved)
        if status == "fallback":
            self.fallbacks.labels(family, record.error or "unknown").inc()
        if status == "error":
            self.errors.labels(family, record.error or "unknown").inc()
        if record.gate_ms is not None:
            self.gate_seconds.labels(family).observe(record.gate_ms / 1000)


@lru_cache(maxsize=1)
def default_metrics() -> RouterMetrics:
    """The process-wide metrics in prometheus_client's default registry (shared by all routers)."""
    return RouterMetrics()
