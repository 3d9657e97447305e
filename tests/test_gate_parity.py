"""The fast path (SDPA attention) computes what the CARES reference computes with eager attention (max
abs diff <= 1e-4, fp32); the compiled path (fixed-shape buckets) what the fast path computes."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from resgate_router import SmolVLMGate
from resgate_router.testing import make_document_image

from .reference import reference_logits

QUESTION = "What is the total amount due on this invoice?"


@pytest.fixture(scope="module")
def plain(tiny_backbone):
    model = AutoModelForImageTextToText.from_pretrained(
        tiny_backbone, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    return model, AutoProcessor.from_pretrained(tiny_backbone)


def _head_state(gate):
    return {f"head.{k}": v for k, v in gate.model.head.state_dict().items()}


@pytest.mark.parametrize(
    "profile,layer,window",
    [
        ("cares", "middle", 0),
        ("single-tile", "middle", 0),
        ("single-tile", "middle", 1),
        ("single-tile", 4, 0),
        ("single-tile", 0, 0),
        ("cares", 3, 2),
    ],
)
def test_fast_path_matches_reference(tiny_backbone, plain, profile, layer, window):
    torch.manual_seed(11)
    gate = SmolVLMGate.from_backbone(tiny_backbone, profile=profile, layer=layer, window=window)
    model, processor = plain
    assert gate.model.backbone.model.config._attn_implementation == "sdpa"
    assert model.config._attn_implementation == "eager"
    images = [
        make_document_image(850, 1100, seed=1),
        make_document_image(1300, 400, lines=8, seed=2),
        make_document_image(300, 200, lines=3, seed=3),
    ]
    for image in images:
        fast = gate.logits([image], [QUESTION])
        ref = reference_logits(
            model, processor, _head_state(gate), image, QUESTION, profile=profile, layer=layer, window=window
        )
        assert fast.shape == ref.shape == (1, 3)
        assert (fast - ref).abs().max().item() <= 1e-4


def test_reference_check_detects_a_wrong_layer(tiny_backbone, plain, page):
    """Negative control: the parity check is sensitive to the layer choice."""
    torch.manual_seed(11)
    gate = SmolVLMGate.from_backbone(tiny_backbone, profile="single-tile", layer=2)
    model, processor = plain
    fast = gate.logits([page], [QUESTION])
    wrong = reference_logits(model, processor, _head_state(gate), page, QUESTION, profile="single-tile", layer=3)
    assert (fast - wrong).abs().max().item() > 1e-3


def test_fast_path_drops_later_layers_and_lm_head(tiny_backbone):
    gate = SmolVLMGate.from_backbone(tiny_backbone, layer=2)
    text = gate.model.backbone.model.text_model
    assert len(text.layers) == 2
    assert isinstance(text.norm, torch.nn.Identity)
    assert not any("lm_head" in name for name, _ in gate.model.named_parameters())


def test_batch_equals_single(tiny_gate):
    pages = [make_document_image(850, 1100, seed=s) for s in range(3)] + [
        make_document_image(2000, 60, lines=1, seed=9)
    ]
    questions = ["What is the total?", "Which company issued this receipt, according to its header line?", "", "Date?"]
    batched = tiny_gate.predict_batch(pages, questions)
    for image, question, decision in zip(pages, questions, batched):
        single = tiny_gate.predict(image, question)
        assert single.probabilities == pytest.approx(decision.probabilities, abs=1e-5)
        assert single.label == decision.label or _margin(decision) <= 2e-5  # a tie within the tolerance
        assert single.expected_resolution == pytest.approx(decision.expected_resolution, rel=1e-5)
    assert len({round(d.probabilities[0], 6) for d in batched}) == len(batched)  # inputs matter


def _margin(decision) -> float:
    top = sorted(decision.probabilities)
    return top[-1] - top[-2]


def test_cares_batch_equals_single(tiny_backbone):
    torch.manual_seed(3)
    gate = SmolVLMGate.from_backbone(tiny_backbone, profile="cares")
    pages = [make_document_image(850, 1100, seed=4), make_document_image(500, 400, lines=5, seed=5)]
    questions = ["What is the total?", "Which company issued this receipt, according to its header?"]
    batched = gate.logits(pages, questions)
    singles = torch.cat([gate.logits([p], [q]) for p, q in zip(pages, questions)])
    assert (batched - singles).abs().max().item() <= 1e-5


def test_image_features_equal_transformers(tiny_gate):
    """The backbone's own image features (no full scans of the pixels) are transformers'
    ``get_image_features``: an all-zero padding view dropped, a real view starting with 0 kept."""
    backbone = tiny_gate.model.backbone
    tile = tiny_gate.tile_size
    pixels = torch.rand(2, 2, 3, tile, tile, generator=torch.Generator().manual_seed(0)) * 2 - 1
    pixels[0, 0, 0, 0, 0] = 0.0  # real, though its first value is 0
    pixels[1, 1] = 0.0  # padding
    with torch.inference_mode():
        ours = backbone.image_features(pixels)
        theirs = backbone.model.get_image_features(pixels, return_dict=True).pooler_output
    assert ours.shape[0] == 3
    assert torch.equal(ours, theirs)


def test_backbone_forward_without_a_pixel_mask_equals_transformers_path(tiny_gate):
    """The gate's own path (no pixel mask) pools the same features as transformers' (a pixel mask
    given, so ``get_image_features`` runs as it is)."""
    pages = [make_document_image(850, 1100, seed=s) for s in range(2)]
    batch = tiny_gate.prepare(pages, ["What is the total?", "Date?"])
    pixels = batch["pixel_values"]
    mask = torch.ones((*pixels.shape[:2], *pixels.shape[-2:]), dtype=torch.bool)
    backbone = tiny_gate.model.backbone
    with torch.inference_mode():
        ours = backbone(batch["input_ids"], batch["attention_mask"], pixels)
        theirs = backbone(batch["input_ids"], batch["attention_mask"], pixels, pixel_attention_mask=mask)
    assert torch.equal(ours, theirs)


def test_bfloat16_runs_and_stays_close(tiny_backbone, page):
    torch.manual_seed(5)
    fp32 = SmolVLMGate.from_backbone(tiny_backbone)
    bf16 = SmolVLMGate.from_backbone(tiny_backbone, dtype="bfloat16")
    bf16.model.head.load_state_dict(fp32.model.head.state_dict())
    a, b = fp32.logits([page], [QUESTION]), bf16.logits([page], [QUESTION])
    assert (
        b.dtype == torch.float32
        and bf16.model.backbone.model.text_model.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16
    )
    assert (a - b).abs().max().item() < 0.05


def test_single_tile_pre_resize_is_pixel_exact(tiny_gate):
    """The gate shrinks pages itself (faster); the processor must see exactly the same pixels."""
    for size in [(1700, 2200), (2200, 1700), (1001, 999), (700, 20), (300, 200)]:
        image = make_document_image(*size, lines=10, seed=sum(size))
        ours = tiny_gate.prepare([image], [QUESTION])
        theirs = tiny_gate.processor(
            text=[tiny_gate._prompt(QUESTION)], images=[[image]], return_tensors="pt", size={"longest_edge": 512}
        )
        assert torch.equal(ours["pixel_values"], theirs["pixel_values"])
        assert torch.equal(ours["input_ids"], theirs["input_ids"])


def test_compiled_buckets_match_the_fast_path(tiny_gate_dir):
    """``compile=True``: batches padded to power-of-two buckets and prompts to whole token steps give
    the uncompiled logits for the real rows (inductor on the CPU here, CUDA graphs on a GPU)."""
    from resgate_router.gate.compiled import TOKEN_STEP, bucket

    assert [bucket(n, 16) for n in (1, 2, 3, 5, 9, 16, 17)] == [1, 2, 4, 8, 16, 16, 17]
    plain = SmolVLMGate.from_pretrained(tiny_gate_dir)
    compiled = SmolVLMGate.from_pretrained(tiny_gate_dir, compile=True, batch_size=4)
    pages = [make_document_image(850, 1100, seed=s) for s in range(3)]
    questions = [QUESTION, "Date?", "Which company issued this receipt, and where is it based?"]
    padded = compiled.runner.pad(compiled.prepare(pages, questions))
    assert padded["input_ids"].shape[0] == 4 and padded["input_ids"].shape[1] % TOKEN_STEP == 0
    # one compile (cold, about 30 s on 2 cores): three rows of three lengths, padded to the 4-bucket
    assert (compiled.logits(pages, questions) - plain.logits(pages, questions)).abs().max().item() <= 1e-4
