"""``OnnxGate``: a gate's exported fast path on ONNX Runtime (see :mod:`resgate_router.gate.export`).

It imports neither torch nor transformers: its inputs come from the gates' shared preprocessing
(:mod:`resgate_router.gate.preprocess`, PIL + numpy), with the prompt tokenized by ``tokenizers``
from the exported ``tokenizer.json``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np

from .._extras import require
from ..errors import ConfigError, GateError, GateLoadError, InputError
from ..hub import read_json, resolve_dir
from ..images import DEFAULT_MAX_PIXELS, ImageInput, load_image
from ..ladder import Ladder
from .batched import BatchedGate, check_options
from .preprocess import Idefics3Preprocessor
from .profiles import check_profile

__all__ = ["OnnxGate", "GATE_TYPE", "PRECISIONS", "model_file"]

GATE_TYPE = "onnx"
PRECISIONS = ("fp32", "int8")
_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}


def model_file(precision: str) -> str:
    """The file name of the exported graph at ``precision`` (``fp32`` or ``int8``)."""
    if precision not in _FILES:
        raise ConfigError(f"unknown precision {precision!r}: expected one of {list(PRECISIONS)}")
    return _FILES[precision]


class OnnxGate(BatchedGate):
    """Same interface and decisions as :class:`~resgate_router.gate.SmolVLMGate`, on ONNX Runtime.

    Load an exported directory with :meth:`from_pretrained` (or ``load_gate``); ``precision`` picks
    ``fp32`` or ``int8`` (default: int8 when the export has it).
    """

    def __init__(
        self,
        session: Any,
        preprocessor: Idefics3Preprocessor,
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
        preprocessor = Idefics3Preprocessor(settings, tokenizer, check_profile(profile or settings["gate"]["profile"]))
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
        loaded = [load_image(im, max_pixels=self.max_pixels) for im in images]
        return self.preprocessor.batch(loaded, list(questions), self._pool)

    def logits(self, images: Sequence[ImageInput], questions: Sequence[object]) -> np.ndarray:
        """Raw head outputs (float32): (batch, classes), or (batch, 1) for a binary gate."""
        inputs = self.prepare(images, questions)
        try:
            return cast(np.ndarray, self.session.run(["logits"], inputs)[0])
        except Exception as exc:  # onnxruntime raises its own untyped errors (e.g. out of memory)
            raise GateError(f"ONNX gate forward pass failed: {exc}") from exc

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        logits = logits.astype(np.float64)
        if self.config.num_classes == 2:
            high = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            return np.stack([1 - high, high], axis=1)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return cast(np.ndarray, shifted / shifted.sum(axis=1, keepdims=True))

    def __repr__(self) -> str:
        return f"OnnxGate(precision={self.precision!r}, profile={self.profile!r}, ladder={self.ladder.spec()!r})"


def _read_settings(directory: Path) -> dict[str, Any]:
    settings = read_json(directory / "config.json")
    if settings.get("gate_type") != GATE_TYPE:
        raise GateLoadError(
            f"{directory} is not an exported ONNX gate (gate_type {GATE_TYPE!r})", path=str(directory / "config.json")
        )
    return settings
