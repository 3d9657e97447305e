"""GPU-only: the fast path on CUDA (fp32 parity with the CPU reference; bf16 batch == single), the
device preprocessing on CUDA (bit-identical to the host path) and the compiled path (CUDA graphs)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from resgate_router import SmolVLMGate
from resgate_router.testing import make_document_image

from .reference import reference_logits

pytestmark = [
    pytest.mark.requires_gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="requires GPU (CUDA)"),
]


@pytest.mark.parametrize("profile", ["cares", "single-tile"])
def test_cuda_fp32_matches_cpu_reference(tiny_backbone, profile):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(2)
    gate = SmolVLMGate.from_backbone(tiny_backbone, profile=profile, device="cuda", dtype="float32")
    model = AutoModelForImageTextToText.from_pretrained(tiny_backbone, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(tiny_backbone)
    head = {f"head.{k}": v.cpu() for k, v in gate.model.head.state_dict().items()}
    image = make_document_image(850, 1100, seed=1)
    fast = gate.logits([image], ["What is the total?"])
    ref = reference_logits(model, processor, head, image, "What is the total?", profile=profile)
    assert (fast - ref).abs().max().item() <= 1e-4


def test_cuda_bf16_batch_equals_single(tiny_backbone):
    torch.manual_seed(2)
    gate = SmolVLMGate.from_backbone(tiny_backbone, device="cuda")
    assert gate.dtype == torch.bfloat16
    pages = [make_document_image(850, 1100, seed=s) for s in range(4)]
    questions = ["What is the total?", "Date?", "Which company issued this receipt?", ""]
    batched = gate.predict_batch(pages, questions)
    for page, question, decision in zip(pages, questions, batched):
        assert gate.predict(page, question).probabilities == pytest.approx(decision.probabilities, abs=2e-2)


@pytest.mark.parametrize("profile", ["cares", "single-tile"])
def test_cuda_preprocessing_is_the_host_path_bit_for_bit(tiny_backbone, profile):
    gate = SmolVLMGate.from_backbone(tiny_backbone, profile=profile, device="cuda", dtype="float32")
    assert gate.device_preprocessor is not None  # "auto" picks the device on a GPU
    host = SmolVLMGate.from_backbone(tiny_backbone, profile=profile, device="cuda", preprocessing="host")
    pages = [make_document_image(*size, seed=sum(size)) for size in [(1700, 2200), (300, 3000), (5, 7), (2400, 600)]]
    questions = ["What is the total?"] * len(pages)
    ours, theirs = gate.prepare(pages, questions), host.prepare(pages, questions)
    assert ours["pixel_values"].is_cuda
    for key in ("input_ids", "attention_mask", "pixel_values"):
        assert torch.equal(ours[key].float(), theirs[key].float()), key


def test_cuda_compiled_bf16_stays_close(tiny_backbone):
    torch.manual_seed(3)
    plain = SmolVLMGate.from_backbone(tiny_backbone, device="cuda")
    compiled = SmolVLMGate.from_backbone(tiny_backbone, device="cuda", compile=True, batch_size=4)
    compiled.model.head.load_state_dict(plain.model.head.state_dict())
    pages = [make_document_image(850, 1100, seed=s) for s in range(3)]
    questions = ["What is the total?", "Date?", "Which company issued this receipt?"]
    for _ in range(2):  # the second call replays the captured graph
        got = compiled.logits(pages, questions)
    assert (got - plain.logits(pages, questions)).abs().max().item() < 0.05
