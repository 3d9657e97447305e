"""The proxy under load in CI (short): 200 concurrent clients for a few seconds through the real
tiny gate to a real loopback upstream. Every request is answered or fails cleanly, no 5xx, the savings
log holds exactly one well-formed record per request, memory stays bounded. The longer run with the
proxy in its own process is ``python -m benchmarks.load`` (benchmarks/RELIABILITY.md)."""

from __future__ import annotations

import asyncio
import os
import time

from benchmarks.load import PeakRSS, audit_log, drive, summarise
from resgate_router import Router
from resgate_router.server import ServerSettings, create_app
from resgate_router.testing import serve_app

from .upstreams import FaultServer

CLIENTS, PER_CLIENT = 200, 2
# per ten requests: two gated images (one streamed), one bad image (400), seven text-only; the
# benchmark's mix is heavier on the gate
KINDS = ("text", "image", "text", "bad", "text", "stream", "text", "text", "text", "text")
RSS_GROWTH_LIMIT = 1024 * 2**20  # generous: the run's figure is printed (about 100-300 MiB here)


def test_200_clients_every_request_answered_and_logged_exactly_once(tiny_gate, tmp_path):
    upstream = FaultServer()
    log = tmp_path / "savings.jsonl"
    router = Router(tiny_gate, family="idefics3", metrics=False, log=log, allow_local_paths=False, on_bad_input="raise")
    settings = ServerSettings(upstream=upstream.url("ok"), gate_max_wait_ms=5)
    try:
        with PeakRSS(os.getpid()) as rss, serve_app(create_app(settings, router=router)) as proxy:
            started = time.monotonic()
            outcomes = asyncio.run(drive(proxy, clients=CLIENTS, per_client=PER_CLIENT, kinds=KINDS))
            wall = time.monotonic() - started
    finally:
        upstream.stop()
    audit = audit_log(log, [o.tag for o in outcomes])
    summary = summarise(outcomes, audit, wall)
    growth = rss.peak - rss.start
    print(f"load: {summary}; peak RSS {rss.peak / 2**20:.0f} MiB (+{growth / 2**20:.0f} MiB)")

    assert len(outcomes) == CLIENTS * PER_CLIENT and summary["unclean"] == 0 and summary["5xx"] == 0, summary
    assert all(o.status == (400 if o.kind == "bad" else 200) for o in outcomes), summary["statuses"]
    assert {k: v for k, v in audit.items() if k != "records"} == {
        "lost": 0,
        "duplicated": 0,
        "unknown": 0,
        "malformed": 0,
    }
    assert audit["records"] == len(outcomes)
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew by {growth / 2**20:.0f} MiB"
