"""Per-request overhead of ``OpenAIAdapter`` (through the router) and of ``wrap(client)`` over a direct
call to the same vLLM server, with a constant decision (a forced class: no gate runs, but the router
still parses the request, plans, resizes and re-encodes the image, and accounts).

Variants, interleaved request by request against one server:
  direct-httpx2  httpx2 POST of the already-routed payload   (baseline for the adapter)
  adapter        Router(adapter=OpenAIAdapter).complete(original request)
  direct-openai  openai client create(**already-routed kwargs) (baseline for wrap)
  wrap           router.wrap(client) create(**original kwargs)
Overhead = median(variant) - median(its baseline); p99 likewise. A text-only request isolates the
adapter/wrap machinery (no image work); the image rows add decoding, resizing and re-encoding the
page (the router's pre-resize). For each page, ``router_work`` is the router's own work on it (a dry
run) against one PIL decode of the same bytes, in this process. Starts its own vLLM server on the
tiny model unless --base-url is given.

    python -m benchmarks.adapter_overhead --requests 200 [--output-json benchmarks/results/adapter_overhead.json]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time

from ._common import environment, png_data_url, run_cli, write_json


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=200, help="timed requests per variant and image")
    parser.add_argument("--base-url", default=None, help="an existing vLLM server (else one is started)")
    parser.add_argument("--model", default="tiny-smolvlm")
    parser.add_argument(
        "--no-pre-resize",
        action="store_true",
        help="Idefics3 policy with pre_resize=False: send images as they came, kwargs only",
    )
    parser.add_argument("--output-json", default=None)


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def router_work(router, request: dict, png: bytes, n: int) -> dict:
    """The router's own work on ``request`` (parse, header, decode, resize, encode, account: a dry
    run, no downstream) against one PIL decode of the same PNG bytes, interleaved, medians in ms."""
    import io

    from PIL import Image

    route, decode = [], []
    for index in range(n + 3):
        started = time.perf_counter()
        router.route(request)
        middle = time.perf_counter()
        Image.open(io.BytesIO(png)).load()
        if index >= 3:  # warm-up
            route.append((middle - started) * 1000)
            decode.append((time.perf_counter() - middle) * 1000)
    work, one = statistics.median(route), statistics.median(decode)
    return {"route_median_ms": round(work, 3), "decode_median_ms": round(one, 3), "ratio": round(work / one, 4)}


def main(args: argparse.Namespace) -> dict:
    import httpx2
    import openai
    from resgate_router.adapters.openai_http import OpenAIAdapter, safe_processor_kwargs

    from resgate_router import Router, get_policy
    from resgate_router.messages import decode_data_url
    from resgate_router.testing import build_tiny_smolvlm, make_document_image

    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        base_url = args.base_url
        if base_url is None:
            from resgate_router.tools.servers import vllm_server

            base_url = stack.enter_context(
                vllm_server(build_tiny_smolvlm(tmp), served_model_name=args.model, engine_in_process=True)
            )
        adapter = stack.enter_context(OpenAIAdapter(base_url, max_retries=0))
        policy = get_policy("idefics3", pre_resize=not args.no_pre_resize)
        router = Router(None, adapter, policy=policy, metrics=False)
        http = stack.enter_context(httpx2.Client(timeout=60))
        client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
        gated = router.wrap(client)
        results: dict = {
            "env": environment("cpu"),
            "base_url": base_url if args.base_url else "started",
            "pre_resize": policy.pre_resize,
            "images": [],
        }
        for size in [None, (640, 480), (1700, 2200)]:
            parts = [{"type": "text", "text": "What is the total?"}]
            if size is not None:
                page = make_document_image(*size, lines=20, seed=1)
                parts.insert(0, {"type": "image_url", "image_url": {"url": png_data_url(page)}})
            messages = [{"role": "user", "content": parts}]
            kwargs = {"model": args.model, "max_tokens": 1, "temperature": 0, "messages": messages}
            request = {**kwargs, "resgate": "low"}
            routed = router.route(request)
            work = None
            if size is not None:
                work = router_work(router, request, decode_data_url(parts[0]["image_url"]["url"])[1], args.requests)
                print(
                    f"{'x'.join(map(str, size))} router's work {work['route_median_ms']:.2f} ms = "
                    f"x{work['ratio']} one PIL decode ({work['decode_median_ms']:.2f} ms)",
                    flush=True,
                )
            payload = adapter.payload(routed.request, routed.processor_kwargs, stream=False)
            routed_kwargs = {k: routed.request[k] for k in kwargs}
            if routed.processor_kwargs:
                routed_kwargs["extra_body"] = {"mm_processor_kwargs": safe_processor_kwargs(routed.processor_kwargs)}
            calls = {
                "direct-httpx2": lambda: http.post(f"{base_url}/chat/completions", json=payload).raise_for_status(),
                "adapter": lambda: router.complete(request),
                "direct-openai": lambda: client.chat.completions.create(**routed_kwargs),
                "wrap": lambda: gated.chat.completions.create(**kwargs, extra_body={"resgate": "low"}),
            }
            times: dict[str, list[float]] = {name: [] for name in calls}
            for index in range(args.requests + 5):
                for name, call in calls.items():
                    started = time.perf_counter()
                    call()
                    if index >= 5:  # warm-up
                        times[name].append((time.perf_counter() - started) * 1000)
            row = {
                "image": list(size) if size else "text only",
                "requests": args.requests,
                "router_work": work,
                **{f"{n}_median_ms": round(statistics.median(t), 3) for n, t in times.items()},
                **{f"{n}_p99_ms": round(_p99(t), 3) for n, t in times.items()},
            }
            for variant, base in (("adapter", "direct-httpx2"), ("wrap", "direct-openai")):
                row[f"{variant}_overhead_median_ms"] = round(
                    statistics.median(times[variant]) - statistics.median(times[base]), 3
                )
                row[f"{variant}_overhead_p99_ms"] = round(_p99(times[variant]) - _p99(times[base]), 3)
                row[f"{variant}_ratio_median"] = round(
                    statistics.median(times[variant]) / statistics.median(times[base]), 4
                )
            results["images"].append(row)
            for variant, base in (("adapter", "direct-httpx2"), ("wrap", "direct-openai")):
                print(
                    f"{'x'.join(map(str, size)) if size else 'text-only':<9} {variant:<7}: "
                    f"{base} {row[base + '_median_ms']:.2f} ms, "
                    f"+{row[variant + '_overhead_median_ms']:.2f} ms median (x{row[variant + '_ratio_median']}), "
                    f"+{row[variant + '_overhead_p99_ms']:.2f} ms at p99",
                    flush=True,
                )
        client.close()
    write_json(args.output_json, results)
    return results


if __name__ == "__main__":
    run_cli(__doc__, add_cli_args, main)
