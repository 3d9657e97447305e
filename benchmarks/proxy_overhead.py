"""The proxy (``resgate serve``'s app, on uvicorn over loopback) with a constant-decision gate vs
direct calls to the same upstream (a real vLLM server on the tiny model, started here unless
--base-url is given) that send the already-routed request: added latency (median, p99) and
throughput ratio at concurrency 1 and 16.

Requests: text only (the proxy's own hop), and a 640x480 page with the constant decision "low", both
with the default pre-resize and with ``pre_resize=False`` (the page is then forwarded as it came).
``--gate tiny`` puts a real tiny SmolVLM gate (built offline) in place of the constant decision: the
page rows then include decoding for the gate and the batched gate call (pre-resize on only).

    python -m benchmarks.proxy_overhead --requests 500 [--gate tiny] [--output-json FILE.json]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ._common import environment, png_data_url, run_cli, write_json


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=500, help="timed requests per setting and side")
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--model", default="tiny-smolvlm")
    parser.add_argument("--gate", choices=["fixed", "tiny"], default="fixed", help="a constant decision or a tiny gate")
    parser.add_argument("--output-json", default=None)


def _load(url: str, body: dict, n: int, concurrency: int) -> tuple[list[float], float]:
    import httpx2

    local = threading.local()

    def one(_: int) -> float:
        client = getattr(local, "client", None) or httpx2.Client(timeout=60)
        local.client = client
        started = time.perf_counter()
        client.post(f"{url}/chat/completions", json=body).raise_for_status()
        return (time.perf_counter() - started) * 1000

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(min(20, n))))  # warm-up
        started = time.perf_counter()
        times = list(pool.map(one, range(n)))
        wall = time.perf_counter() - started
    return times, n / wall


def main(args: argparse.Namespace) -> dict:
    from resgate_router.adapters.openai_http import safe_processor_kwargs

    from resgate_router import Router
    from resgate_router.server import ServerSettings, create_app
    from resgate_router.server.routing import build_router
    from resgate_router.testing import build_tiny_gate, build_tiny_smolvlm, make_document_image
    from resgate_router.tools.servers import serve_app, vllm_server

    page = png_data_url(make_document_image(640, 480, lines=8, seed=1))
    bodies = {
        "text": [{"type": "text", "text": "What is the total?"}],
        "page": [{"type": "image_url", "image_url": {"url": page}}, {"type": "text", "text": "What is the total?"}],
    }
    results: dict = {"env": environment("cpu"), "rows": []}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        upstream = args.base_url or stack.enter_context(
            vllm_server(build_tiny_smolvlm(tmp), served_model_name=args.model, engine_in_process=True)
        )
        gate = {"fixed_class": 0} if args.gate == "fixed" else {"gate": str(build_tiny_gate(f"{tmp}/gate"))}
        for pre_resize in (True, False) if args.gate == "fixed" else (True,):
            settings = ServerSettings(upstream=upstream, family="idefics3", pre_resize=pre_resize, **gate)
            router = build_router(settings)
            proxy = stack.enter_context(serve_app(create_app(settings, router=router))) + "/v1"
            dry = Router(router.gate, policy=router.policy, metrics=False)  # what the proxy forwards
            for kind, content in bodies.items():
                if kind == "text" and not pre_resize:
                    continue  # same path either way
                body = {
                    "model": args.model,
                    "max_tokens": 1,
                    "temperature": 0,
                    "messages": [{"role": "user", "content": content}],
                }
                routed = dry.route(body)  # the direct side sends exactly what the proxy forwards
                kwargs = safe_processor_kwargs(routed.processor_kwargs)
                direct_body = {**routed.request, **({"mm_processor_kwargs": kwargs} if kwargs else {})}
                for concurrency in [int(c) for c in args.concurrency.split(",")]:
                    direct, direct_rps = _load(upstream, direct_body, args.requests, concurrency)
                    gated, gated_rps = _load(proxy, body, args.requests, concurrency)
                    row = {
                        "request": kind,
                        "pre_resize": pre_resize,
                        "concurrency": concurrency,
                        "direct_median_ms": round(statistics.median(direct), 3),
                        "proxy_median_ms": round(statistics.median(gated), 3),
                        "added_median_ms": round(statistics.median(gated) - statistics.median(direct), 3),
                        "added_p99_ms": round(
                            statistics.quantiles(gated, n=100)[98] - statistics.quantiles(direct, n=100)[98], 3
                        ),
                        "throughput_ratio": round(gated_rps / direct_rps, 4),
                        "proxy_rps": round(gated_rps, 2),
                        "gate": args.gate,
                    }
                    results["rows"].append(row)
                    print(
                        f"{kind:<4} pre_resize={pre_resize!s:<5} c={concurrency:<2}: "
                        f"direct {row['direct_median_ms']:.2f} ms, "
                        f"proxy +{row['added_median_ms']:.2f} ms median, +{row['added_p99_ms']:.2f} ms p99, "
                        f"throughput x{row['throughput_ratio']}",
                        flush=True,
                    )
    write_json(args.output_json, results)
    return results


if __name__ == "__main__":
    run_cli(__doc__, add_cli_args, main)
