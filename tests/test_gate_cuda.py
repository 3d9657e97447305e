"""GPU-only: the fast path on CUDA (fp32 parity with the CPU reference; bf16 batch == single)."""

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
