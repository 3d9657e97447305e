"""The proxy under load in CI (short): 200 concurrent clients for a few seconds through the real
tiny gate to a real loopback upstream. Every request is answered or fails cleanly, no 5xx, the savings
log holds exactly one well-formed record per request, memory stays bounded. The longer run with the
proxy in its own process is ``python -m benchmarks.load`` (benchmarks/RELIABILITY.md)."""

from __future__ import annotations

import asyncio
import os
import time

from benchmarks.load import FAILURE, SUCCESS, UNCLEAN, PeakRSS, audit_log, classify, drive, summarise
from resgate_router import AsyncRouter

from .upstreams import running_proxy

CLIENTS, PER_CLIENT = 200, 2
# per ten requests: two gated images (one streamed), one bad image (400), seven text-only; the
# benchmark's mix is heavier on the gate
KINDS = ("text", "image", "text", "bad", "text", "stream", "text", "text", "text", "text")
RSS_GROWTH_LIMIT = 1024 * 2**20  # generous: the run's figure is printed


def test_200_clients_every_request_answered_and_logged_exactly_once(tiny_gate, tmp_path):
    log = tmp_path / "savings.jsonl"
    router = AsyncRouter(
        tiny_gate, family="idefics3", metrics=False, log=log, allow_local_paths=False, on_bad_input="raise"
    )
    with PeakRSS(os.getpid()) as rss, running_proxy(router, gate_max_wait_ms=5) as (proxy, _):
        started = time.monotonic()
        outcomes = asyncio.run(drive(proxy, clients=CLIENTS, per_client=PER_CLIENT, kinds=KINDS))
        wall = time.monotonic() - started
    audit = audit_log(log, [o.tag for o in outcomes])
    summary = summarise(outcomes, audit, wall)
    growth = rss.peak - rss.start
    print(f"load: {summary}; peak RSS {rss.peak / 2**20:.0f} MiB (+{growth / 2**20:.0f} MiB)")

    errors = [(o.tag, o.kind, o.error) for o in outcomes if o.error]
    assert len(outcomes) == CLIENTS * PER_CLIENT and summary["unclean"] == 0 and summary["5xx"] == 0, (summary, errors)
    assert all(o.status == (400 if o.kind == "bad" else 200) for o in outcomes), summary["statuses"]
    # every stream ended in [DONE]: a stream failing mid-way (200, then an error event) is no success
    assert all(o.result == (FAILURE if o.kind == "bad" else SUCCESS) for o in outcomes), summary
    assert summary["stream_errors"] == 0
    assert {k: v for k, v in audit.items() if k != "records"} == {
        "lost": 0,
        "duplicated": 0,
        "unknown": 0,
        "malformed": 0,
    }
    assert audit["records"] == len(outcomes)
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew by {growth / 2**20:.0f} MiB"


def test_a_stream_cut_mid_way_is_a_clean_failure_not_a_success(tiny_gate, tmp_path):
    """The load run's classifier on real answers of the proxy: a stream whose upstream cuts it after
    three chunks is a 200 ending in an error event, counted as a failure; a malformed one is unclean."""
    router = AsyncRouter(tiny_gate, family="idefics3", metrics=False, log=tmp_path / "savings.jsonl")
    with running_proxy(router, scenario="cutstream", upstream_retries=0) as (proxy, _):
        outcomes = asyncio.run(drive(proxy, clients=2, per_client=1, kinds=("stream",)))
    summary = summarise(outcomes, {}, 1.0)
    assert [(o.status, o.result) for o in outcomes] == [(200, FAILURE)] * 2, summary
    assert summary["successes"] == 0 and summary["stream_errors"] == summary["clean_failures"] == 2
    assert classify("stream", 200, 'data: {"choices": [{"delta": {}}]}\n\n') == UNCLEAN  # no end at all
    assert classify("stream", 200, 'data: {"choices": []}\n\ndata: [DONE]\n\n') == UNCLEAN  # a chunk without choices
