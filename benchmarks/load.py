"""The proxy under load: ``--clients`` concurrent clients for ``--duration`` seconds against a real
loopback OpenAI-compatible upstream, the proxy (``resgate serve`` with a tiny random-weight gate) in
its own process so its peak RSS is its own.

Each client sends, in turn, image requests (four page sizes), text-only requests, streamed image
requests and one bad image in ten (a client error, 400). Every request carries a unique tag as its
``model``; the savings log's records carry it back, so the audit matches records to requests one to
one. Reported: requests, successes (a completion, or a stream ending in ``[DONE]``), clean failures
(an OpenAI-format error, also a 200 stream that ends in one: counted again as ``stream_errors``), 5xx,
unclean outcomes (transport errors, timeouts, malformed answers), records lost/duplicated/malformed,
latency p50/p95, throughput, the proxy's RSS (start, peak, peak per half of the run) and whether it
still answers ``/healthz`` after the run.

    python -m benchmarks.load --clients 200 --duration 60 --output-json benchmarks/results/load.json
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.upstreams import sse_events

from ._common import png_data_url, run_cli, write_json

#: request kinds, cycled through by each client (offset by its number)
KINDS = ("image", "text", "image", "stream", "image", "text", "image", "stream", "image", "bad")
RECORD_KEYS = {"id", "time", "model", "family", "status", "images", "saved_tokens", "gate_ms", "error"}
STATUSES = {"routed", "passthrough", "fallback", "disabled", "error"}
SUCCESS, FAILURE, UNCLEAN = "success", "clean failure", "unclean"


@dataclass
class Outcome:
    tag: str
    kind: str
    status: int | None  # None: no HTTP answer at all (transport error, timeout)
    result: str  # SUCCESS, FAILURE (a well-formed OpenAI-format error) or UNCLEAN
    ms: float
    error: str | None = None  # the client's exception, when there was no HTTP answer


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds during which requests start")
    parser.add_argument("--output-json", default=None)


@functools.cache
def pages() -> list[str]:
    from resgate_router.testing import make_document_image

    sizes = [(640, 480), (320, 240), (1000, 700), (200, 150)]
    return [png_data_url(make_document_image(w, h, lines=6, seed=i)) for i, (w, h) in enumerate(sizes)]


def request_body(kind: str, tag: str, page: str) -> dict[str, Any]:
    url = "data:image/png;base64,@@not-base64@@" if kind == "bad" else page
    image = [{"type": "image_url", "image_url": {"url": url}}] if kind != "text" else []
    content = [*image, {"type": "text", "text": "What is the total?"}]
    return {"model": tag, "messages": [{"role": "user", "content": content}], "stream": kind == "stream"}


def _is_error(body: Any) -> bool:
    return bool(body["error"]["message"]) and bool(body["error"]["type"])


def classify(kind: str, status: int, text: str) -> str:
    """SUCCESS: a completion the client can use, or a stream of chunks ending in ``[DONE]``. FAILURE:
    an OpenAI-format error the client can report, also a 200 stream whose chunks end in one error
    event (it failed mid-way). UNCLEAN: anything else."""
    try:
        if status == 200 and kind == "stream":
            *chunks, last = sse_events(text)
            if not all(json.loads(chunk)["choices"] for chunk in chunks):
                return UNCLEAN
            return SUCCESS if last == "[DONE]" else FAILURE if _is_error(json.loads(last)) else UNCLEAN
        body = json.loads(text)
        if status == 200:
            return SUCCESS if body["choices"][0]["message"]["content"] is not None else UNCLEAN
        return FAILURE if _is_error(body) else UNCLEAN
    except (ValueError, KeyError, IndexError, TypeError):
        return UNCLEAN


async def _client(http: Any, url: str, number: int, stop: Any, kinds: tuple[str, ...], out: list[Outcome]) -> None:
    import httpx2

    images, n = pages(), 0
    while not stop(n):
        kind, tag = kinds[(number + n) % len(kinds)], f"load-{number}-{n}"
        body = request_body(kind, tag, images[(number + n) % len(images)])
        started = time.perf_counter()
        error = None
        try:
            response = await http.post(f"{url}/v1/chat/completions", json=body)
            status, result = response.status_code, classify(kind, response.status_code, response.text)
        except httpx2.HTTPError as exc:
            status, result, error = None, UNCLEAN, f"{type(exc).__name__}: {exc}"
        out.append(Outcome(tag, kind, status, result, (time.perf_counter() - started) * 1000, error))
        n += 1


async def drive(
    url: str, *, clients: int, duration: float | None = None, per_client: int | None = None, kinds=KINDS
) -> list[Outcome]:
    """``clients`` concurrent clients; each starts requests until ``duration`` has passed or it has
    sent ``per_client`` requests."""
    import httpx2

    out: list[Outcome] = []
    deadline = time.monotonic() + duration if duration is not None else float("inf")
    limit = per_client if per_client is not None else float("inf")

    def stop(sent: int) -> bool:
        return sent >= limit or time.monotonic() >= deadline

    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx2.AsyncClient(limits=limits, timeout=120) as http:
        await asyncio.gather(*(_client(http, url, i, stop, kinds, out) for i in range(clients)))
    return out


def audit_log(path: str | Path, tags: list[str]) -> dict[str, int]:
    """Match the savings log to the requests sent: lost, duplicated, unknown and malformed records."""
    counts: Counter[str] = Counter()
    malformed = 0
    for line in Path(path).read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        well_formed = isinstance(record, dict) and RECORD_KEYS <= record.keys()
        if not well_formed or record["status"] not in STATUSES or not isinstance(record["model"], str):
            malformed += 1
            continue
        counts[record["model"]] += 1
    sent = set(tags)
    return {
        "records": sum(counts.values()) + malformed,
        "lost": len(sent - counts.keys()),
        "duplicated": sum(c - 1 for tag, c in counts.items() if c > 1),
        "unknown": len(counts.keys() - sent),
        "malformed": malformed,
    }


class PeakRSS:
    """Samples a process's resident memory every ``interval`` seconds in a thread: ``peak`` in bytes,
    ``halves`` the peak of the first and of the second half of the run (growth between them hints at
    a leak)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        import psutil

        self.process, self.interval = psutil.Process(pid), interval
        self.start = self.peak = self.process.memory_info().rss
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self.process.memory_info().rss)
            self.peak = max(self.peak, self.samples[-1])

    @property
    def halves(self) -> tuple[int, int]:
        middle = len(self.samples) // 2
        return max(self.samples[:middle], default=self.start), max(self.samples[middle:], default=self.start)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def summarise(outcomes: list[Outcome], audit: dict[str, int], wall: float) -> dict[str, Any]:
    ms = sorted(o.ms for o in outcomes)
    return {
        "requests": len(outcomes),
        "by_kind": dict(Counter(o.kind for o in outcomes)),
        "statuses": {str(k): v for k, v in sorted(Counter(o.status for o in outcomes).items(), key=str)},
        "successes": sum(o.result == SUCCESS for o in outcomes),
        "clean_failures": sum(o.result == FAILURE for o in outcomes),
        "stream_errors": sum(o.result == FAILURE and o.status == 200 for o in outcomes),
        "unclean": sum(o.result == UNCLEAN for o in outcomes),
        "5xx": sum(o.status is not None and o.status >= 500 for o in outcomes),
        "client_errors_answered_4xx": sum(o.kind == "bad" and o.status == 400 for o in outcomes),
        "latency_ms_p50": round(statistics.median(ms), 1),
        "latency_ms_p95": round(ms[int(0.95 * (len(ms) - 1))], 1),
        "throughput_rps": round(len(outcomes) / wall, 1),
        "log": audit,
    }


def _serve(gate: Path, upstream: str, port: int, log: Path) -> Any:
    """``resgate serve`` in its own process; returns it once it answers /healthz."""
    import subprocess
    import sys

    import httpx2

    command = [sys.executable, "-m", "resgate_router.cli", "serve", "--upstream", upstream, "--gate", str(gate)]
    command += ["--family", "idefics3", "--port", str(port), "--log-path", str(log)]
    with log.with_suffix(".out").open("w") as out:  # uvicorn's access log: one line per request
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx2.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("resgate serve did not start")


def _healthz(url: str) -> int | None:
    """The status ``GET /healthz`` answers (None: no answer)."""
    import httpx2

    try:
        return httpx2.get(f"{url}/healthz", timeout=10).status_code
    except httpx2.HTTPError:
        return None


def main(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    from resgate_router.testing import build_tiny_gate
    from resgate_router.tools.servers import free_port

    # the loopback upstream of the test suite: a real HTTP server answering chat completions
    from tests.upstreams import FaultServer

    from ._common import environment

    with tempfile.TemporaryDirectory() as tmp:
        gate = build_tiny_gate(Path(tmp) / "gate")
        log = Path(tmp) / "savings.jsonl"
        upstream = FaultServer()
        port = free_port()
        proxy = _serve(gate, upstream.url("ok"), port, log)
        try:
            with PeakRSS(proxy.pid) as rss:
                started = time.monotonic()
                outcomes = asyncio.run(drive(f"http://127.0.0.1:{port}", clients=args.clients, duration=args.duration))
                wall = time.monotonic() - started
            alive = proxy.poll() is None
            healthz = _healthz(f"http://127.0.0.1:{port}")  # still answering after the run
        finally:
            proxy.terminate()  # graceful: uvicorn drains, the app flushes the log
            proxy.wait(60)
            upstream.stop()
        result = summarise(outcomes, audit_log(log, [o.tag for o in outcomes]), wall)
    result.update(
        clients=args.clients,
        duration_s=args.duration,
        wall_s=round(wall, 1),
        proxy_crashed=not alive,
        healthz_after_run=healthz,
        proxy_rss_mb_start=round(rss.start / 2**20, 1),
        proxy_rss_mb_peak=round(rss.peak / 2**20, 1),
        proxy_rss_mb_peak_by_half=[round(h / 2**20, 1) for h in rss.halves],
    )
    payload = {"env": environment("cpu"), "result": result}
    print(json.dumps(result, indent=2))
    write_json(args.output_json, payload)
    return payload


if __name__ == "__main__":
    run_cli(__doc__, add_cli_args, main)
