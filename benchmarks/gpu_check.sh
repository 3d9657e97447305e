#!/usr/bin/env bash
# Issue 16's GPU items in one short run, for a lent GPU machine (e.g. the device tool's H200):
#   GIT_SHA=$(git rev-parse --short HEAD) bash benchmarks/gpu_check.sh        # OUT=dir for the JSON
# 1. the CUDA tests (device preprocessing bit-identical to the host path, bf16, compiled path);
# 2. gate latency, bf16, batch 1 and 16, own preprocessing on the GPU vs the processor on the host,
#    with the ratio gate ms / prefill ms saved for SmolVLM-256M and the 2.2B SmolVLM-Instruct;
# 3. the same with compile=True (CUDA graphs at fixed batch buckets).
# Needs python3 with torch (CUDA), transformers, tokenizers, pillow, numpy, safetensors, tqdm, httpx
# and pytest (the device tool's image has them all; the bench/server extras are not needed: checked by
# importing these suites with rapidfuzz, pydantic, fastapi and openai blocked). Nothing is downloaded:
# random-weight models are built from configs. The CUDA tests compare against the installed Pillow.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 GIT_SHA="${GIT_SHA:-unknown}"
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT"
python3 -c "import torch, PIL, transformers; print(torch.cuda.get_device_name(), 'torch', torch.__version__, 'pillow', PIL.__version__, 'transformers', transformers.__version__)"
python3 -m pytest -q -p no:cacheprovider -rs tests/test_gate_cuda.py 2>&1 | tee "$OUT/gpu_tests.log"
common=(--device cuda --dtype bfloat16 --batch-sizes 1,16 --runs 10 --warmup 3)
python3 -m benchmarks.gate_latency "${common[@]}" \
    --variants fast-cares,processor-cares,fast-single-tile,processor-single-tile \
    --downstreams smolvlm-256m,smolvlm-2.2b --output-json "$OUT/gate_latency_h200_bf16.json"
python3 -m benchmarks.gate_latency "${common[@]}" --compile --variants fast-cares,fast-single-tile \
    --output-json "$OUT/gate_latency_h200_bf16_compiled.json"
