"""``OnnxGate``: a gate's exported fast path on ONNX Runtime (see :mod:`resgate_router.gate.export`).

It imports neither torch nor transformers: the Idefics3 processor's work for one image per prompt
(resize, cut into tiles, rescale, normalize, expand ``<image>`` in the prompt) is redone here with
PIL and numpy, the same arithmetic as transformers' PIL image processor, and the prompt is
tokenized with ``tokenizers`` from the exported ``tokenizer.json``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from PIL import Image

from .._extras import require
from ..errors import ConfigError, GateError, GateLoadError, InputError, QuestionError
from ..hub import read_json, resolve_dir
from ..images import DEFAULT_MAX_PIXELS, ImageInput, load_image
from ..ladder import Ladder
from ..policies.idefics3 import resized_size, tile_grid
from .batched import BatchedGate, check_options
from .profiles import check_profile, prepare_image

__all__ = ["OnnxGate", "GATE_TYPE", "PRECISIONS", "model_file"]

GATE_TYPE = "onnx"
PRECISIONS = ("fp32", "int8")
_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}


def model_file(precision: str) -> str:
    """The file name of the exported graph at ``precision`` (``fp32`` or ``int8``)."""
    if precision not in _FILES:
        raise ConfigError(f"unknown precision {precision!r}: expected one of {list(PRECISIONS)}")
    return _FILES[precision]


class _Preprocessor:
    """Idefics3's processor for one image per prompt, in PIL + numpy + ``tokenizers``."""

    def __init__(self, settings: dict[str, Any], tokenizer: Any, profile: str) -> None:
        image = settings["image_processor"]
        self.tile = int(image["max_image_size"]["longest_edge"])
        self.longest_edge = self.tile if profile == "single-tile" else int(image["size"]["longest_edge"])
        self.resample, self.scale = int(image["resample"]), float(image["rescale_factor"])
        self.mean = np.asarray(image["image_mean"], dtype=np.float32)
        self.std = np.asarray(image["image_std"], dtype=np.float32)
        self.profile = profile
        tokens = settings["tokens"]
        self.image_token, self.fake, self.global_tag = tokens["image"], tokens["fake_image"], tokens["global_image"]
        self.image_seq_len, self.pad_id = int(tokens["image_seq_len"]), int(tokens["pad_id"])
        self.prefix, self.suffix = settings["prompt"]["prefix"], settings["prompt"]["suffix"]
        self.max_tokens = int(settings["max_tokens"])
        self.tokenizer = tokenizer

    def tiles(self, image: Image.Image) -> tuple[np.ndarray, int, int]:
        """(tiles as float32 (n, 3, tile, tile), rows, cols); rows = cols = 0 for a single tile."""
        image, t = prepare_image(image, self.profile, self.tile, self.resample), self.tile
        rows, cols = tile_grid(image.width, image.height, self.longest_edge, t)
        image = image.resize(resized_size(image.width, image.height, self.longest_edge), self.resample)
        image = image.resize((max(cols, 1) * t, max(rows, 1) * t), self.resample)  # resize_for_vision_encoder
        if rows == 0:
            return self._normalize([image]), 0, 0
        crops = [image.crop((c * t, r * t, (c + 1) * t, (r + 1) * t)) for r in range(rows) for c in range(cols)]
        return self._normalize([*crops, image.resize((t, t), self.resample)]), rows, cols

    def _normalize(self, images: list[Image.Image]) -> np.ndarray:
        """Rescale then normalize, as transformers does: uint8 -> float64 * scale -> float32, (x - mean) / std."""
        pixels = np.stack([np.asarray(image) for image in images])  # (n, H, W, 3) uint8
        pixels = (pixels.astype(np.float64) * self.scale).astype(np.float32)
        return ((pixels - self.mean) / self.std).transpose(0, 3, 1, 2)

    def image_text(self, rows: int, cols: int) -> str:
        """What ``<image>`` expands to in the prompt (Idefics3Processor.replace_image_token)."""
        global_view = f"{self.fake}{self.global_tag}{self.image_token * self.image_seq_len}{self.fake}"
        if rows == 0 and cols == 0:
            return global_view
        grid = "".join(
            "".join(f"{self.fake}<row_{r + 1}_col_{c + 1}>{self.image_token * self.image_seq_len}" for c in range(cols))
            + "\n"
            for r in range(rows)
        )
        return f"{grid}\n{global_view}"

    def prompt(self, question: object, rows: int, cols: int) -> str:
        if not isinstance(question, str):
            raise QuestionError(f"question must be a string, got {type(question).__name__}")
        if self.image_token in question:
            raise QuestionError(f"question must not contain the image token {self.image_token!r}")
        return self.prefix.replace(self.image_token, self.image_text(rows, cols), 1) + question + self.suffix

    def encode(self, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask), int64, padded on the right to the longest prompt."""
        encodings = self.tokenizer.encode_batch(prompts, add_special_tokens=True)
        length = max(len(e.ids) for e in encodings)
        if length > self.max_tokens:
            raise QuestionError(f"prompt is {length} tokens, over the backbone's limit of {self.max_tokens}")
        ids = np.full((len(prompts), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(prompts), length), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        return ids, mask


class OnnxGate(BatchedGate):
    """Same interface and decisions as :class:`~resgate_router.gate.SmolVLMGate`, on ONNX Runtime.

    Load an exported directory with :meth:`from_pretrained` (or ``load_gate``); ``precision`` picks
    ``fp32`` or ``int8`` (default: int8 when the export has it).
    """

    def __init__(
        self,
        session: Any,
        preprocessor: _Preprocessor,
        settings: dict[str, Any],
        *,
        ladder: Ladder,
        precision: str,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        batch_size: int = 16,
    ) -> None:
        self.session, self.preprocessor, self.settings = session, preprocessor, settings
        self.config = SimpleNamespace(**{**settings["gate"], "profile": preprocessor.profile})
        if len(ladder) != self.config.num_classes:
            raise ConfigError(
                f"ladder {ladder.spec()!r} has {len(ladder)} rungs for a gate of {self.config.num_classes} classes"
            )
        self.ladder, self.precision, self.profile = ladder, precision, preprocessor.profile
        self.max_pixels, self.batch_size = max_pixels, batch_size
        self._pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="resgate-onnx")

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        precision: str | None = None,
        ladder: str | Ladder | None = None,
        profile: str | None = None,
        threads: int | None = None,
        device: str | None = None,
        dtype: str | None = None,
        **options: Any,
    ) -> OnnxGate:
        """Load a directory written by ``resgate export``. ``profile`` overrides the exported one (the
        graph serves both); ``threads``: ONNX Runtime intra-op threads (default: one per physical
        core). ``device``/``dtype`` are accepted for ``load_gate`` callers: CPU and float32 only."""
        check_options("ONNX", options)
        if device not in (None, "cpu") or dtype not in (None, "float32", "fp32"):
            raise ConfigError(f"the ONNX gate runs on the CPU in float32 or int8, not {device!r}/{dtype!r}")
        require("onnx", "onnxruntime", "tokenizers")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        directory = resolve_dir(path, "gate")  # a directory, or a Hub repo holding an exported gate
        settings = _read_settings(directory)
        precision = precision or settings["default_precision"]
        file = directory / model_file(precision)
        if not file.is_file():
            raise GateLoadError(f"{directory} has no {precision} model ({file.name})", path=str(file))
        options_ = ort.SessionOptions()
        # Without ORT's arena, activations go back to malloc when freed: the 256M gate's peak RSS
        # drops by about 150 MiB (int8), at the same speed.
        options_.enable_cpu_mem_arena = False
        if threads:
            options_.intra_op_num_threads = threads
        try:
            session = ort.InferenceSession(str(file), options_, providers=["CPUExecutionProvider"])
            tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        except Exception as exc:  # ORT and tokenizers raise their own untyped errors for corrupt files
            raise GateLoadError(f"cannot load the ONNX gate in {directory}: {exc}", path=str(directory)) from exc
        tokenizer.no_padding()
        tokenizer.no_truncation()
        preprocessor = _Preprocessor(settings, tokenizer, check_profile(profile or settings["gate"]["profile"]))
        return cls(
            session,
            preprocessor,
            settings,
            ladder=Ladder.parse(ladder or settings["gate"]["ladder"]),
            precision=precision,
            **options,
        )

    # ---------------------------------------------------------------- inference
    def prepare(self, images: Sequence[ImageInput], questions: Sequence[object]) -> dict[str, np.ndarray]:
        """The graph's inputs for a batch: ``input_ids``, ``attention_mask``, ``pixel_values``."""
        if isinstance(questions, str) or len(images) != len(questions):
            raise InputError("images and questions must be sequences of the same length")
        prep = self.preprocessor
        loaded = [load_image(im, max_pixels=self.max_pixels) for im in images]
        tiled = list(self._pool.map(prep.tiles, loaded)) if len(loaded) > 1 else [prep.tiles(loaded[0])]
        ids, mask = prep.encode([prep.prompt(q, rows, cols) for q, (_, rows, cols) in zip(questions, tiled)])
        most = max(t.shape[0] for t, _, _ in tiled)
        pixels = np.zeros((len(tiled), most, *tiled[0][0].shape[1:]), dtype=np.float32)
        for row, (tiles, _, _) in enumerate(tiled):
            pixels[row, : tiles.shape[0]] = tiles  # shorter rows padded with empty tiles, as the processor does
        return {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels}

    def logits(self, images: Sequence[ImageInput], questions: Sequence[object]) -> np.ndarray:
        """Raw head outputs (float32): (batch, classes), or (batch, 1) for a binary gate."""
        inputs = self.prepare(images, questions)
        try:
            return self.session.run(["logits"], inputs)[0]
        except Exception as exc:  # onnxruntime raises its own untyped errors (e.g. out of memory)
            raise GateError(f"ONNX gate forward pass failed: {exc}") from exc

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        logits = logits.astype(np.float64)
        if self.config.num_classes == 2:
            high = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            return np.stack([1 - high, high], axis=1)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def __repr__(self) -> str:
        return f"OnnxGate(precision={self.precision!r}, profile={self.profile!r}, ladder={self.ladder.spec()!r})"


def _read_settings(directory: Path) -> dict[str, Any]:
    settings = read_json(directory / "config.json")
    if settings.get("gate_type") != GATE_TYPE:
        raise GateLoadError(
            f"{directory} is not an exported ONNX gate (gate_type {GATE_TYPE!r})", path=str(directory / "config.json")
        )
    return settings
