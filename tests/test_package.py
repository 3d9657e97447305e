"""Public surface, light import, installed layout and the offline builders."""

from __future__ import annotations

import ast
import statistics
import subprocess
import sys
from pathlib import Path

import resgate_router


def test_exported_members():
    assert set(resgate_router.__all__) == {
        "__version__",
        "SmolVLMGate",
        "GraniteDoclingGate",
        "OnnxGate",
        "LegibilityGate",
        "FixedGate",
        "load_gate",
        "GateDecision",
        "Gate",
        "BaseRouter",
        "AsyncRouter",
        "Hooks",
        "SavingsRecord",
        "ImageRecord",
        "Ladder",
        "FULL",
        "load_image",
        "ResgateError",
        "ConfigError",
        "InputError",
        "ImageError",
        "ImageTooLargeError",
        "ForbiddenURLError",
        "QuestionError",
        "GateError",
        "GateLoadError",
        "MissingExtraError",
        "AdapterError",
        "AdapterNotFoundError",
        "UpstreamConnectionError",
        "UpstreamStatusError",
        "UpstreamTimeout",
        "UpstreamProtocolError",
        "Router",
        "RoutedRequest",
        "RouterResponse",
        "RoutingStats",
        "SavingsLog",
        "FamilyPolicy",
        "get_policy",
        "available_families",
        "GateTimeoutError",
    }
    for name in resgate_router.__all__:
        assert getattr(resgate_router, name) is not None


def test_error_tree():
    from resgate_router import errors as e

    assert issubclass(e.ImageTooLargeError, e.ImageError) and issubclass(e.ImageError, e.InputError)
    assert issubclass(e.InputError, ValueError) and issubclass(e.GateLoadError, e.GateError)
    assert issubclass(e.GateTimeoutError, e.GateError) and "GateTimeoutError" in e.__all__
    assert issubclass(e.MissingExtraError, ImportError)
    assert all(issubclass(getattr(e, n), e.ResgateError) for n in e.__all__)


def blocker(*packages: str) -> str:
    """Python source that makes importing any of ``packages`` fail, as if they were not installed."""
    return f"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {set(packages)!r}:
            raise ModuleNotFoundError(f"blocked: {{name}}")
sys.meta_path.insert(0, Block())
"""


def run_ok(code: str) -> None:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_import_without_heavy_extras():
    code = (
        blocker("torch", "transformers", "vllm", "fastapi")
        + """
import resgate_router
from resgate_router import GateDecision, Ladder, load_image, MissingExtraError
assert 'torch' not in sys.modules and 'transformers' not in sys.modules
try:
    resgate_router.SmolVLMGate
except MissingExtraError as exc:
    assert exc.extra == 'hf' and "pip install 'resgate-router[hf]'" in str(exc)
else:
    raise SystemExit('expected MissingExtraError')
print('ok')
"""
    )
    run_ok(code)


def test_serving_runs_without_the_tools_extra():
    """rapidfuzz and tqdm are the tools extra's: the router, the proxy, the plugin and the serving CLI
    import without them, and a tools module says which extra it needs."""
    code = (
        blocker("rapidfuzz", "tqdm")
        + """
import contextlib, io
import resgate_router.router, resgate_router.server.app, resgate_router.vllm_plugin, resgate_router.gated_llm
from resgate_router import MissingExtraError, cli
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    cli.main(["serve", "--help"])
try:
    import resgate_router.tools.bench.run
except MissingExtraError as exc:
    assert exc.extra == 'tools' and "pip install 'resgate-router[tools]'" in str(exc)
else:
    raise SystemExit('expected MissingExtraError')
print('ok')
"""
    )
    run_ok(code)


def test_every_gate_imports_from_the_package_lazily():
    """``from resgate_router import`` every gate kind and ``load_gate``: light names load at once,
    the learned gates only when used, so the import itself pulls no torch, transformers or onnxruntime."""
    code = """
import sys
import resgate_router
heavy = {'torch', 'transformers', 'onnxruntime', 'peft'}
assert not heavy & set(sys.modules), heavy & set(sys.modules)
from resgate_router import FixedGate, LegibilityGate, load_gate
assert not heavy & set(sys.modules), heavy & set(sys.modules)
from resgate_router import OnnxGate
from resgate_router import GraniteDoclingGate, SmolVLMGate
from resgate_router.gate import GraniteDoclingGate as G, OnnxGate as O, SmolVLMGate as S, load_gate as L
assert (SmolVLMGate, GraniteDoclingGate, OnnxGate, load_gate) == (S, G, O, L)
assert FixedGate(1).predict(None, 'q').label == 1 and LegibilityGate().ladder.spec() == 'card'
print('ok')
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_adapters_package_is_installed_under_resgate_router():
    import resgate_router.adapters as adapters

    assert adapters.__file__.replace("\\\\", "/").endswith("adapters/__init__.py")


def test_full_size_architecture_has_256m_parameters():
    import torch
    from transformers import AutoModelForImageTextToText

    from resgate_router.tools.model_configs import smolvlm_256m_config

    config = smolvlm_256m_config()
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == 256.48
    assert config.text_config.num_hidden_layers == 30 and config.vision_config.hidden_size == 768


def test_tiny_model_uses_smolvlm_tokens_and_tiling(tiny_backbone, page):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_backbone)
    tokenizer = processor.tokenizer
    ids = {
        t: tokenizer.convert_tokens_to_ids(t)
        for t in [
            "<global-img>",
            "<row_1_col_1>",
            "<row_6_col_6>",
            "<fake_token_around_image>",
            "<image>",
            "<end_of_utterance>",
        ]
    }
    assert ids == {
        "<global-img>": 384,
        "<row_1_col_1>": 385,
        "<row_6_col_6>": 420,
        "<fake_token_around_image>": 421,
        "<image>": 422,
        "<end_of_utterance>": 511,
    }
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Total?"}]}]
    prompt = processor.apply_chat_template(messages)
    assert prompt == "<|im_start|>User:<image>Total?<end_of_utterance>\n"
    full = processor(text=[prompt], images=[[page]], return_tensors="pt")
    one = processor(text=[prompt], images=[[page]], return_tensors="pt", size={"longest_edge": 512})
    assert full["pixel_values"].shape[1] == 17 and int((full["input_ids"] == 422).sum()) == 17 * 64
    assert one["pixel_values"].shape[1] == 1 and int((one["input_ids"] == 422).sum()) == 64


def test_full_size_tokenizer_has_smolvlm_ids():
    from resgate_router.testing import build_tokenizer

    tokenizer = build_tokenizer(base_size=49152, vocab_size=49280)
    assert tokenizer.convert_tokens_to_ids("<global-img>") == 49152
    assert tokenizer.convert_tokens_to_ids("<image>") == 49190
    assert tokenizer.convert_tokens_to_ids("<end_of_utterance>") == 49279


def test_modules_stay_small():
    """The code's size rules (issue 17): no module over 400 lines, the median function within 15."""
    root = Path(__file__).resolve().parent.parent
    modules = [p for part in ("resgate_router", "adapters", "benchmarks") for p in (root / part).rglob("*.py")]
    assert len(modules) > 50
    too_long = {str(p.relative_to(root)): n for p in modules if (n := len(p.read_text().splitlines())) > 400}
    assert not too_long, f"modules over 400 lines: {too_long}"
    functions = [
        node.end_lineno - node.lineno + 1
        for p in modules
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None
    ]
    assert statistics.median(functions) <= 15, statistics.median(functions)
