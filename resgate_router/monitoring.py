"""Prometheus metrics (``prometheus_client``) and the in-process ``RoutingStats`` summary."""

from __future__ import annotations

import threading
from collections import Counter as Tally
from functools import lru_cache
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

__all__ = ["RouterMetrics", "RoutingStats", "default_metrics"]


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

    def observe(self, record: dict[str, Any]) -> None:
        family = record["family"]
        self.requests.labels(family, record["status"]).inc()
        for image in record["images"]:
            self.images.labels(family, str(image.get("class_name")), image["source"]).inc()
        for kind in ("baseline", "routed", "saved"):
            value = record.get(f"{kind}_tokens")
            if value:
                self.tokens.labels(family, kind).inc(max(0, value))
        if record.get("flops_saved"):
            self.flops_saved.labels(family).inc(max(0.0, record["flops_saved"]))
        if record["status"] == "fallback":
            self.fallbacks.labels(family, record.get("error") or "unknown").inc()
        if record["status"] == "error":
            self.errors.labels(family, record.get("error") or "unknown").inc()
        if record.get("gate_ms") is not None:
            self.gate_seconds.labels(family).observe(record["gate_ms"] / 1000)


@lru_cache(maxsize=1)
def default_metrics() -> RouterMetrics:
    """The process-wide metrics in prometheus_client's default registry (shared by all routers)."""
    return RouterMetrics()


class RoutingStats:
    """Running totals for a summary: requests, class mix, tokens and the share saved."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.statuses: Tally[str] = Tally()
        self.classes: Tally[str] = Tally()
        self.baseline_tokens = self.routed_tokens = 0

    def observe(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.requests += 1
            self.statuses[record["status"]] += 1
            self.classes.update(str(image.get("class_name")) for image in record["images"])
            self.baseline_tokens += record.get("baseline_tokens") or 0
            self.routed_tokens += record.get("routed_tokens") or 0

    @property
    def saved_fraction(self) -> float:
        return 1 - self.routed_tokens / self.baseline_tokens if self.baseline_tokens else 0.0

    def summary(self) -> dict[str, Any]:
        with self._lock:
            images = sum(self.classes.values())
            return {
                "requests": self.requests,
                "statuses": dict(self.statuses),
                "images": images,
                "class_mix": {k: v / images for k, v in sorted(self.classes.items())} if images else {},
                "baseline_tokens": self.baseline_tokens,
                "routed_tokens": self.routed_tokens,
                "saved_tokens": self.baseline_tokens - self.routed_tokens,
                "saved_percent": round(100 * self.saved_fraction, 2),
            }

    def __str__(self) -> str:
        s = self.summary()
        mix = ", ".join(f"{k} {v:.0%}" for k, v in s["class_mix"].items()) or "none"
        return (
            f"{s['requests']} requests, {s['images']} images; visual tokens {s['routed_tokens']} routed vs "
            f"{s['baseline_tokens']} baseline ({s['saved_percent']}% saved); class mix: {mix}"
        )
