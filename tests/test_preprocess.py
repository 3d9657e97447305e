"""The gates' own Idefics3 preprocessing against an independent computation with the real transformers
processor: ``cares`` bit-identical to the rendition + the processor at its defaults, ``single-tile``
to the processor at ``size.longest_edge=512``, on varied images; both the host path
(gate/preprocess.py, PIL + numpy) and the device path (gate/device_preprocess.py, torch, run here on
CPU tensors: the code a CUDA gate runs)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from resgate_router import SmolVLMGate
from resgate_router.testing import make_document_image, processor_inputs

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
    return processor_inputs(gate, [image], [question])  # grey and RGBA become RGB as in load_image


@pytest.fixture(
    scope="module",
    params=[("cares", "host"), ("single-tile", "host"), ("cares", "device"), ("single-tile", "device")],
    ids="-".join,
)
def gate(request, tiny_gate_dir):
    profile, preprocessing = request.param
    gate = SmolVLMGate.from_pretrained(tiny_gate_dir, profile=profile, preprocessing=preprocessing)
    assert (gate.device_preprocessor is not None) == (preprocessing == "device")
    return gate


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


@pytest.mark.parametrize(
    "size,out",
    [
        ((1700, 2200), (396, 512)),
        ((300, 3000), (51, 512)),
        ((512, 512), (2048, 2048)),
        ((2048, 300), (512, 75)),
        ((5, 7), (365, 512)),
        ((1, 1), (3, 2)),
        ((1000, 10), (512, 5)),
        ((777, 333), (64, 900)),
    ],
)
def test_the_device_resize_and_the_banded_host_resize_are_pillows(size, out):
    """Pillow's LANCZOS, in both directions of each axis and both orders of the passes."""
    from resgate_router.gate.device_preprocess import DeviceResampler
    from resgate_router.gate.resample import resize

    pixels = np.random.default_rng(sum(size)).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(pixels).resize(out, Image.Resampling.LANCZOS))
    assert np.array_equal(resize(Image.fromarray(pixels), out, Image.Resampling.LANCZOS), expected)
    ours = DeviceResampler("cpu").resize(torch.from_numpy(pixels).unsqueeze(0).to(torch.float64), out)[0]
    assert np.array_equal(ours.to(torch.uint8).numpy(), expected)


def test_the_device_path_uploads_a_batch_once(tiny_gate_dir, monkeypatch):
    gate = SmolVLMGate.from_pretrained(tiny_gate_dir, profile="single-tile", preprocessing="device")
    copies = []
    real = torch.Tensor.to
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: copies.append(self.dtype) or real(self, *a, **k))
    gate.device_preprocessor.upload(list(VARIED.values())[:3])
    assert copies == [torch.uint8]  # one copy, of uint8 pixels


def test_within_a_batchs_item_a_resize_is_not_banded(monkeypatch):
    """A batch's items run side by side; inside one, a resize is not split into bands on the pixel
    pool (its siblings have the cores) and still equals Pillow's; outside a batch it is banded."""
    from concurrent.futures import ThreadPoolExecutor

    from resgate_router.gate import pool, resample

    monkeypatch.setattr(pool, "WORKERS", 2)  # as on any machine with 2 cores or more
    monkeypatch.setattr(resample, "WORKERS", 2)
    bands: list[str] = []
    real_map = resample.parallel_map
    monkeypatch.setattr(resample, "parallel_map", lambda fn, items: bands.append("banded") or real_map(fn, items))
    page = Image.fromarray(np.random.default_rng(3).integers(0, 256, (2200, 1700, 3), dtype=np.uint8))
    expected = page.resize((396, 512), Image.Resampling.LANCZOS).tobytes()

    def shrink(_: int) -> bytes:
        return resample.resize_image(page, (396, 512), Image.Resampling.LANCZOS).tobytes()

    assert shrink(0) == expected and bands == ["banded", "banded"]  # one call per pass
    bands.clear()
    with ThreadPoolExecutor(2) as executor:
        assert pool.concurrently(executor, shrink, [0, 1]) == [expected, expected]
    assert bands == []
    assert pool.splits()  # the caller's thread was never marked


def test_parallel_map_runs_inline_within_a_batchs_item(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from resgate_router.gate import pool

    monkeypatch.setattr(pool, "WORKERS", 2)

    def threads(_: int = 0) -> set[str]:
        return set(pool.parallel_map(lambda _: threading.current_thread().name, range(4)))

    with ThreadPoolExecutor(2, thread_name_prefix="batch") as executor:
        inside = pool.concurrently(executor, threads, range(3))
    assert all(len(names) == 1 and next(iter(names)).startswith("batch") for names in inside)  # its own thread
    assert all(name.startswith("resgate-pixels") for name in threads())  # outside a batch: the pool's
