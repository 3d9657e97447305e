"""The gates' own Idefics3 preprocessing (gate/preprocess.py) against an independent computation with
the real transformers processor: ``cares`` bit-identical to the rendition + the processor at its
defaults, ``single-tile`` to the processor at ``size.longest_edge=512``, on varied images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from resgate_router import SmolVLMGate, load_image
from resgate_router.gate.profiles import cares_canvas
from resgate_router.testing import make_document_image

QUESTIONS = ["What is the total?", "", " leading space\n\nand lines", "Wer hat unterschrieben? Ünïcödé ✓"]


def _varied() -> dict[str, Image.Image]:
    rgba = make_document_image(700, 900, lines=12, seed=4).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((700, 900)))
    return {
        "tall": make_document_image(300, 3000, lines=60, seed=1),
        "wide": make_document_image(3000, 200, lines=3, seed=2),
        "tiny": make_document_image(5, 7, lines=1, seed=3),
        "huge": make_document_image(4000, 5000, lines=80, seed=5),
        "grey": make_document_image(800, 600, lines=10, seed=6).convert("L"),
        "rgba": rgba,
        "square-512": make_document_image(512, 512, lines=8, seed=7),
    }


VARIED = _varied()


def _processor_inputs(gate, image, question):
    """The reference: the profile's rendition (cares) or the whole image, then the processor."""
    image = load_image(image)  # the same decoded pixels (grey and RGBA become RGB here)
    prompt = gate._prompt(question)
    if gate.profile == "cares":
        return gate.processor(text=[prompt], images=[[cares_canvas(image)]], return_tensors="pt")
    return gate.processor(text=[prompt], images=[[image]], return_tensors="pt", size={"longest_edge": 512})


@pytest.fixture(scope="module", params=["cares", "single-tile"])
def gate(request, tiny_gate_dir):
    return SmolVLMGate.from_pretrained(tiny_gate_dir, profile=request.param)


@pytest.mark.parametrize("name", list(VARIED))
def test_bit_identical_to_the_processor(gate, name):
    for question in QUESTIONS[:2]:
        ours = gate.prepare([VARIED[name]], [question])
        theirs = _processor_inputs(gate, VARIED[name], question)
        assert ours["pixel_values"].dtype == theirs["pixel_values"].dtype == torch.float32
        assert torch.equal(ours["pixel_values"], theirs["pixel_values"]), name
        assert torch.equal(ours["input_ids"], theirs["input_ids"]) and torch.equal(
            ours["attention_mask"], theirs["attention_mask"]
        )
    tiles = ours["pixel_values"].shape[1]
    assert tiles == (17 if gate.profile == "cares" else 1)


def test_prompts_tokenize_as_the_processor_and_the_image_tokens_are_cached(gate):
    image = VARIED["square-512"]
    for question in QUESTIONS:
        assert torch.equal(
            gate.prepare([image], [question])["input_ids"], _processor_inputs(gate, image, question)["input_ids"]
        )
    cached = gate.preprocessor._image_ids
    assert cached and all(ids is not None for ids in cached.values())  # the cached head was used


def test_batch_equals_single(gate):
    images, questions = list(VARIED.values())[:4], QUESTIONS
    batch = gate.prepare(images, questions)
    for row, (image, question) in enumerate(zip(images, questions)):
        single = gate.prepare([image], [question])
        length = single["input_ids"].shape[1]
        assert torch.equal(batch["pixel_values"][row], single["pixel_values"][0])
        assert torch.equal(batch["input_ids"][row, :length], single["input_ids"][0])
        assert batch["attention_mask"][row].sum() == length


def test_the_normalize_table_is_the_processors_arithmetic(gate):
    """Every uint8 value of every channel, against transformers' own rescale + normalize."""
    from transformers.image_transforms import normalize, rescale

    image = gate.processor.image_processor
    values = np.tile(np.arange(256, dtype=np.uint8)[:, None, None], (1, 1, 3))  # (256, 1, 3)
    expected = normalize(rescale(values, image.rescale_factor), image.image_mean, image.image_std)
    ours = gate.preprocessor.normalize([values])[0]  # (3, 256, 1)
    assert np.array_equal(ours.transpose(1, 2, 0), expected.astype(np.float32))
