"""Export a gate's fast path to ONNX, with what :class:`~resgate_router.gate.onnx.OnnxGate` needs to
run it without torch, and optionally a dynamically quantized int8 copy.

The graph takes ``input_ids``, ``attention_mask`` (batch, sequence) and ``pixel_values`` (batch,
tiles, 3, tile, tile) and returns the head's ``logits``; batch, sequence and tiles are dynamic, so one
graph serves both profiles. It computes what :class:`~resgate_router.gate.model.ResGateModel` does,
written without the data-dependent steps torch.export cannot trace: every Idefics3 tile is a full
tile (the processor resizes to multiples of the tile size), so the vision tower's patch positions are
``0..P-1`` with no patch mask, and the ``<image>`` positions take the tiles' features in order
(a gather instead of ``masked_scatter``). Exported with the dynamo exporter (``torch.onnx.export(...,
dynamo=True)``).
"""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path
from typing import Any, cast

import onnx
import torch
from torch import nn

from ..errors import ConfigError
from .onnx import GATE_TYPE, PRECISIONS, OnnxGate, model_file
from .smolvlm import SmolVLMGate

__all__ = ["export_gate", "quantize_int8", "varied_inputs", "agreement", "FastPath", "DEFAULT_OPSET"]

DEFAULT_OPSET = 18
_QUESTIONS = (
    "What is the total?",
    "What is the date of the invoice?",
    "Read the heading of the form.",
    "Which company issued this document? Answer with the name only.",
    "What value is entered for the field labeled NAME on the second page, bottom left?",
    "How much",
)


class FastPath(nn.Module):
    """``ResGateModel`` as a traceable graph: (input_ids, attention_mask, pixel_values) -> logits."""

    def __init__(self, gate: SmolVLMGate) -> None:
        super().__init__()
        backbone = gate.model.backbone
        self.inner, self.head = backbone.model, gate.model.head
        self.window, self.low, self.high = backbone.window, backbone.low, backbone.high
        self.image_token_id = backbone.image_token_id

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor
    ) -> torch.Tensor:
        batch, tiles, channels, height, width = pixel_values.shape
        vision = self.inner.vision_model
        patches = vision.embeddings.patch_embedding(pixel_values.reshape(batch * tiles, channels, height, width))
        hidden = patches.flatten(2).transpose(1, 2) + vision.embeddings.position_embedding.weight.unsqueeze(0)
        hidden = vision.post_layernorm(vision.encoder(inputs_embeds=hidden).last_hidden_state)
        features = self.inner.connector(hidden)
        dim = features.shape[-1]
        features = features.reshape(batch, -1, dim)  # each row's tiles in order: its <image> positions' features
        is_image = input_ids == self.image_token_id
        index = (torch.cumsum(is_image.long(), dim=1) - 1).clamp(min=0)
        merged = torch.where(
            is_image.unsqueeze(-1),
            torch.gather(features, 1, index.unsqueeze(-1).expand(-1, -1, dim)),
            self.inner.text_model.get_input_embeddings()(input_ids),
        )
        out = self.inner.text_model(
            inputs_embeds=merged, attention_mask=attention_mask, use_cache=False, output_hidden_states=self.window > 0
        )
        if self.window > 0:
            hidden = torch.stack(out.hidden_states[self.low : self.high + 1], dim=0).mean(dim=0)
        else:
            hidden = out.last_hidden_state
        # masked_mean_pool with float masks (ONNX Runtime has no boolean Where)
        attended = attention_mask.to(hidden.dtype)
        text = (~is_image).to(hidden.dtype) * attended
        has_text = (text.sum(dim=1, keepdim=True) > 0).to(hidden.dtype)
        use = has_text * text + (1 - has_text) * attended
        pooled = (hidden.float() * use.unsqueeze(-1)).sum(dim=1) / use.sum(dim=1, keepdim=True).clamp(min=1)
        return cast(torch.Tensor, self.head(pooled).float())


def _example_inputs(gate: SmolVLMGate) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two rows of different lengths (right padding), two tiles each: no axis is traced at size 1."""
    image_id, pad = gate.model.backbone.image_token_id, gate.processor.tokenizer.pad_token_id
    seq = gate.processor.image_seq_len
    text = [t for t in range(4, 40) if t not in (image_id, pad)]
    rows = [text[:3] + [image_id] * (2 * seq) + text[3:8], text[:5] + [image_id] * (2 * seq) + text[5:14]]
    length = max(len(r) for r in rows)
    ids = torch.tensor([r + [pad] * (length - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (length - len(r)) for r in rows])
    tile = gate.tile_size
    pixels = torch.Generator().manual_seed(0)
    return ids, mask, torch.rand(2, 2, 3, tile, tile, generator=pixels) * 2 - 1


def _settings(gate: SmolVLMGate, *, opset: int, int8: bool) -> dict[str, Any]:
    config = gate.config
    return {
        "gate_type": GATE_TYPE,
        "format_version": 1,
        "gate": {
            "backbone": config.backbone,
            "layer": gate.model.backbone.layer,
            "window": config.window,
            "profile": gate.profile,
            "ladder": gate.ladder.to_list(),
            "num_classes": config.num_classes,
            "class_names": list(config.class_names),
            "head_hidden": config.head_hidden,
            "feature_dim": config.feature_dim,
        },
        "default_precision": "int8" if int8 else "fp32",
        "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}",
        "opset": opset,
        **gate.preprocessing,  # prompt, tokens, max_tokens, image_processor: what OnnxGate preprocesses with
    }


def _export_graph(gate: SmolVLMGate, file: Path, opset: int) -> None:
    module = FastPath(gate).eval()
    batch, seq, tiles = torch.export.Dim("batch"), torch.export.Dim("sequence"), torch.export.Dim("tiles")
    with warnings.catch_warnings():  # the exporter's own notices (axis renaming, pytree deprecations)
        warnings.filterwarnings("ignore", message=r".*axis name.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
        program = torch.onnx.export(
            module,
            _example_inputs(gate),
            input_names=["input_ids", "attention_mask", "pixel_values"],
            output_names=["logits"],
            dynamic_shapes={
                "input_ids": {0: batch, 1: seq},
                "attention_mask": {0: batch, 1: seq},
                "pixel_values": {0: batch, 1: tiles},
            },
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    # weights beside the graph: ORT maps them instead of copying (dynamo=True always returns a program)
    cast("torch.onnx.ONNXProgram", program).save(str(file), external_data=True)
    # the exporter logs and keeps its own opset when it cannot convert to the one asked for
    got = next(o.version for o in onnx.load(str(file), load_external_data=False).opset_import if o.domain == "")
    if got != opset:
        raise ConfigError(f"the exporter could not produce opset {opset} (it gave {got}); use {DEFAULT_OPSET} or later")


def quantize_int8(source: str | Path, target: str | Path) -> Path:
    """Dynamic int8 quantization (weights int8, activations quantized per batch at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = Path(target)
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, use_external_data_format=True)
    data = target.with_name(target.name + ".data")
    data.chmod(target.stat().st_mode)  # the quantizer creates it owner-only (a temporary file's mode)
    return target


def varied_inputs(count: int, seed: int = 0) -> list[tuple[Any, str]]:
    """(image, question) pairs of varied sizes, aspect ratios, content and question lengths; the
    same pairs for the same ``seed``."""
    import numpy as np
    from PIL import Image

    from ..testing import make_document_image

    rng = random.Random(seed)
    pairs = []
    for k in range(count):
        width, height = rng.choice([(850, 1100), (1700, 2200), (600, 300), (300, 900), (512, 512), (2000, 700)])
        kind = k % 4
        if kind == 3:  # a photo-like image: smooth noise (numpy's, seeded: PIL's effect_noise is not)
            spread = rng.uniform(20, 90)
            noise = np.random.default_rng(rng.randrange(2**32)).normal(128, spread, (height // 8, width // 8))
            image = Image.fromarray(noise.clip(0, 255).astype(np.uint8)).convert("RGB")
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        else:
            image = make_document_image(width, height, lines=rng.choice([3, 15, 40]), seed=seed * 1000 + k)
        pairs.append((image, rng.choice(_QUESTIONS)))
    return pairs


def agreement(reference: Any, candidate: Any, pairs: list[tuple[Any, str]]) -> dict[str, Any]:
    """How often two gates pick the same class on ``pairs``, and their largest probability gap."""
    images, questions = [p[0] for p in pairs], [p[1] for p in pairs]
    a, b = reference.predict_batch(images, questions), candidate.predict_batch(images, questions)
    same = sum(x.label == y.label for x, y in zip(a, b))
    gap = max(abs(p - q) for x, y in zip(a, b) for p, q in zip(x.probabilities, y.probabilities))
    return {"samples": len(pairs), "agreement": same / len(pairs), "max_abs_prob_diff": gap}


def export_gate(
    gate: str | Path | SmolVLMGate,
    out_dir: str | Path,
    *,
    int8: bool = False,
    opset: int = DEFAULT_OPSET,
    check_samples: int = 16,
    progress: bool = True,
    **load: Any,
) -> dict[str, Any]:
    """Export ``gate`` (a directory, checkpoint or loaded fp32 CPU gate) to ``out_dir``; return the
    written settings, with ``checks``: fp32 ONNX vs PyTorch (and int8 vs fp32 ONNX when ``int8``) on
    ``check_samples`` varied inputs. ``load`` goes to :meth:`SmolVLMGate.from_pretrained`."""
    from tqdm.auto import tqdm

    if not isinstance(gate, SmolVLMGate):
        from .loading import MLP, gate_type

        kind = gate_type(gate)
        if kind != MLP:
            raise ConfigError(f"{gate}: only the MLP gate exports to ONNX; this is a {kind!r} gate")
        gate = SmolVLMGate.from_pretrained(gate, device="cpu", dtype="float32", **load)
    elif gate.device.type != "cpu" or gate.dtype != torch.float32:
        raise ConfigError("export a gate loaded on the CPU in float32")
    out = Path(out_dir)
    settings = _settings(gate, opset=opset, int8=int8)
    out.mkdir(parents=True, exist_ok=True)
    for name in map(model_file, PRECISIONS):  # a previous export's files (ONNX appends to existing .data)
        (out / name).unlink(missing_ok=True)
        (out / f"{name}.data").unlink(missing_ok=True)
    with tqdm(total=3 + int8, desc="export", unit="step", disable=not progress) as bar:
        bar.set_postfix_str("exporting the graph")
        _export_graph(gate, out / model_file("fp32"), opset)
        gate.processor.save_pretrained(str(out))  # tokenizer.json, chat template, processor settings
        (out / "config.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
        bar.update()
        if int8:
            bar.set_postfix_str("quantizing to int8")
            quantize_int8(out / model_file("fp32"), out / model_file("int8"))
            bar.update()
        bar.set_postfix_str(f"checking on {check_samples} inputs")
        settings["checks"] = _checks(gate, out, int8, check_samples) if check_samples > 0 else {}
        (out / "config.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
        bar.update(2)
    return settings


def _checks(gate: SmolVLMGate, out: Path, int8: bool, samples: int) -> dict[str, Any]:
    pairs = varied_inputs(samples)
    fp32 = OnnxGate.from_pretrained(out, precision="fp32")
    checks = {"fp32_vs_torch": agreement(gate, fp32, pairs)}
    if int8:
        checks["int8_vs_fp32"] = agreement(fp32, OnnxGate.from_pretrained(out, precision="int8"), pairs)
    return checks
