"""Bad and unusual inputs through the gate: converted correctly, or a typed error."""

from __future__ import annotations

import pytest
from PIL import Image

from resgate_router import ImageError, InputError, QuestionError, SmolVLMGate
from resgate_router.testing import make_document_image

from .badimages import corrupt_inputs, encode, exif_rotated, unusual_modes

QUESTION = "What is the total?"


@pytest.fixture(scope="module")
def cares_gate(tiny_backbone):
    return SmolVLMGate.from_backbone(tiny_backbone, profile="cares")


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16"])
def test_modes_give_the_same_decision_as_their_rgb_conversion(tiny_gate, mode):
    from resgate_router.images import to_rgb

    image = unusual_modes()[mode]
    assert tiny_gate.predict(image, QUESTION) == tiny_gate.predict(to_rgb(image), QUESTION)


def test_exif_rotated_photo_is_gated_upright(tiny_gate):
    page = make_document_image(400, 200, lines=4, seed=5)
    rotated = exif_rotated(page, orientation=6)
    upright = Image.open(__import__("io").BytesIO(rotated))
    from PIL import ImageOps

    expected = tiny_gate.predict(ImageOps.exif_transpose(upright).convert("RGB"), QUESTION)
    decision = tiny_gate.predict(rotated, QUESTION)
    assert decision == expected
    assert decision.expected_resolution == pytest.approx(
        tiny_gate.ladder.expected_resolution(decision.probabilities, 400)
    )


@pytest.mark.parametrize("size", [(1, 1), (20000, 50), (50, 20000), (3, 7000)])
@pytest.mark.parametrize("which", ["single-tile", "cares"])
def test_extreme_sizes(tiny_gate, cares_gate, size, which):
    gate = tiny_gate if which == "single-tile" else cares_gate
    decision = gate.predict(encode(Image.new("L", size, 255)), QUESTION)
    assert sum(decision.probabilities) == pytest.approx(1.0, abs=1e-5)
    assert decision.label in (0, 1, 2)


@pytest.mark.parametrize("name", list(corrupt_inputs()))
def test_corrupt_images_raise_image_error(tiny_gate, name):
    with pytest.raises(ImageError):
        tiny_gate.predict(corrupt_inputs()[name], QUESTION)


def test_empty_question_is_gated(tiny_gate, page):
    a, b = tiny_gate.predict(page, ""), tiny_gate.predict(page, QUESTION)
    assert sum(a.probabilities) == pytest.approx(1.0, abs=1e-5) and a.probabilities != b.probabilities


@pytest.mark.parametrize("question", [None, 3, b"bytes", ["list"]])
def test_non_string_question(tiny_gate, page, question):
    with pytest.raises(QuestionError):
        tiny_gate.predict(page, question)


def test_question_too_long_for_the_backbone(tiny_gate, page):
    with pytest.raises(QuestionError, match="tokens"):
        tiny_gate.predict(page, "why " * 6000)


def test_mismatched_batch(tiny_gate, page):
    with pytest.raises(InputError):
        tiny_gate.predict_batch([page, page], [QUESTION])
    with pytest.raises(InputError):
        tiny_gate.predict_batch([page], QUESTION)
    assert tiny_gate.predict_batch([], []) == []


def test_decision_fields(tiny_gate, page):
    d = tiny_gate.predict(page, QUESTION)
    assert d.resolution == tiny_gate.ladder[d.label] and d.class_name == ["low", "medium", "high"][d.label]
    assert d.confidence == max(d.probabilities) == d.probabilities[d.label]
    native = max(page.size)
    assert d.expected_resolution == pytest.approx(
        384 * d.probabilities[0] + 512 * d.probabilities[1] + native * d.probabilities[2]
    )
    assert d.to_dict()["confidence"] == d.confidence


def test_binary_variant(tiny_backbone, page, tmp_path):
    gate = SmolVLMGate.from_backbone(tiny_backbone, num_classes=2, ladder="512,full")
    logit = gate.logits([page], [QUESTION])
    assert logit.shape == (1, 1)
    d = gate.predict(page, QUESTION)
    high = 1 / (1 + __import__("math").exp(-logit.item()))
    assert d.probabilities == pytest.approx((1 - high, high)) and d.class_name in ("low", "high")
    loaded = SmolVLMGate.from_pretrained(gate.save_pretrained(tmp_path / "binary"))
    assert loaded.predict(page, QUESTION) == d
