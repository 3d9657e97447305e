"""The gate's own Idefics3 preprocessing, one image per prompt, in PIL + numpy + ``tokenizers``: the
PyTorch gate and the ONNX gate both run it; no transformers processor on the hot path.

It computes what Idefics3's PIL image processor and processor compute (resize to the longest edge,
resize for the vision encoder, cut into tiles plus a global view, rescale, normalize, expand
``<image>`` in the prompt), bit for bit: the tests compare it with the real processor. Faster:
- rescale + normalize is one lookup in a per-channel table of the 256 uint8 values, computed with
  the processor's own arithmetic (float64 rescale, float32 normalize), so it is exact, written
  straight into channel-first order, one plane per thread;
- tiles are views of one array, not PIL crops;
- every resize runs its two passes in bands on threads, bit for bit (gate/resample.py);
- the tokens of the expanded ``<image>`` (1,088 of them for 17 tiles) are tokenized once per grid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..errors import ConfigError, QuestionError
from ..policies.idefics3 import resized_size, tile_grid
from .pool import concurrently, parallel_map
from .profiles import prepare_image
from .resample import resize_image

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["Idefics3Preprocessor", "preprocessing_settings"]

_SENTINEL = "\x00QUESTION\x00"
_CHECKS = ("", " two  spaces\n", "What is the total?", "Read the heading of the form, please.")
_STEPS = ("do_resize", "do_convert_rgb", "do_image_splitting", "do_rescale", "do_normalize")


def preprocessing_settings(processor: Any, prompt: Any, max_tokens: int) -> dict[str, Any]:
    """What :class:`Idefics3Preprocessor` needs from a transformers Idefics3 processor (the ``prompt``,
    ``tokens``, ``image_processor`` and ``max_tokens`` entries of an exported gate's config).
    ``prompt(question)`` is the gate's chat template; it must insert the question verbatim."""
    image = processor.image_processor
    if not all(getattr(image, step, False) for step in _STEPS):
        raise ConfigError(f"the gate's preprocessing needs an Idefics3 image processor with {', '.join(_STEPS)} on")
    prefix, _, suffix = prompt(_SENTINEL).partition(_SENTINEL)
    if prefix.count(processor.image_token) != 1 or any(prompt(q) != prefix + q + suffix for q in _CHECKS):
        raise ConfigError("the gate's chat template does not insert the question verbatim after one <image>")
    return {
        "prompt": {"prefix": prefix, "suffix": suffix},
        "tokens": {
            "image": processor.image_token,
            "fake_image": processor.fake_image_token,
            "global_image": processor.global_image_tag,
            "image_seq_len": processor.image_seq_len,
            "pad_id": processor.tokenizer.pad_token_id,
        },
        "max_tokens": max_tokens,
        "image_processor": {
            "size": dict(image.size),
            "max_image_size": dict(image.max_image_size),
            "resample": int(image.resample),
            "rescale_factor": float(image.rescale_factor),
            "image_mean": [float(v) for v in image.image_mean],
            "image_std": [float(v) for v in image.image_std],
        },
    }


class Idefics3Preprocessor:
    """Backbone inputs for (image, question) pairs under a gate profile. ``tokenizer`` is a
    ``tokenizers.Tokenizer`` (padding and truncation are turned off on it)."""

    def __init__(self, settings: dict[str, Any], tokenizer: Tokenizer, profile: str) -> None:
        image = settings["image_processor"]
        self.tile = int(image["max_image_size"]["longest_edge"])
        self.longest_edge = self.tile if profile == "single-tile" else int(image["size"]["longest_edge"])
        self.resample = int(image["resample"])
        self.profile = profile
        self.lut = _normalize_table(float(image["rescale_factor"]), image["image_mean"], image["image_std"])
        tokens = settings["tokens"]
        self.image_token, self.fake, self.global_tag = tokens["image"], tokens["fake_image"], tokens["global_image"]
        self.image_seq_len, self.pad_id = int(tokens["image_seq_len"]), int(tokens["pad_id"])
        self.prefix: str = settings["prompt"]["prefix"]
        self.suffix: str = settings["prompt"]["suffix"]
        self.max_tokens = int(settings["max_tokens"])
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self.tokenizer = tokenizer
        self._image_ids: dict[tuple[int, int], list[int] | None] = {}

    # ------------------------------------------------------------------ pixels
    def render(self, image: Image.Image) -> tuple[list[np.ndarray], int, int]:
        """The uint8 (tile, tile, 3) tiles of one image (views of one array, the global view last) and
        its grid; rows = cols = 0 for a single tile."""
        image, t = prepare_image(image, self.profile, self.tile, self.resample), self.tile
        rows, cols = tile_grid(image.width, image.height, self.longest_edge, t)
        size = resized_size(image.width, image.height, self.longest_edge)
        if size != image.size:
            image = resize_image(image, size, self.resample)  # cares: 512 -> 2048
        whole = (max(cols, 1) * t, max(rows, 1) * t)  # resize_for_vision_encoder, to whole tiles
        if whole != size:
            image = resize_image(image, whole, self.resample)
        pixels = np.asarray(image)
        if rows == 0:
            return [pixels], 0, 0
        crops = [pixels[r * t : (r + 1) * t, c * t : (c + 1) * t] for r in range(rows) for c in range(cols)]
        return [*crops, np.asarray(resize_image(image, (t, t), self.resample))], rows, cols

    def normalize(self, images: list[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        """uint8 (H, W, 3) arrays -> float32 (n, 3, H, W) (into ``out`` when given), exactly as
        rescale then normalize."""
        if out is None:
            out = np.empty((len(images), 3, *images[0].shape[:2]), dtype=np.float32)

        def plane(job: tuple[int, int]) -> None:
            n, c = job
            # straight into ``out``; uint8 indices never leave the 256-entry table, so "clip" never
            # clips (it only spares numpy the buffered copy that the default "raise" makes)
            self.lut[c].take(images[n][..., c], out=out[n, c], mode="clip")

        parallel_map(plane, [(n, c) for n in range(len(images)) for c in range(3)])
        return out

    # ------------------------------------------------------------------ text
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

    def head(self, rows: int, cols: int) -> str:
        """The prompt up to the question: the chat prefix with ``<image>`` expanded."""
        return self.prefix.replace(self.image_token, self.image_text(rows, cols), 1)

    def prompt(self, question: object, rows: int, cols: int) -> str:
        return self.head(rows, cols) + self._checked(question) + self.suffix

    def token_ids(self, question: object, rows: int, cols: int) -> list[int]:
        """The prompt's ids. The head (chat prefix and image tokens) is tokenized once per grid, when
        that is provably the same as tokenizing the whole prompt."""
        question = self._checked(question)
        head = self._head_ids(rows, cols)
        if head is None:
            return self.tokenizer.encode(self.prompt(question, rows, cols)).ids
        return head + self.tokenizer.encode(question + self.suffix, add_special_tokens=False).ids

    def _checked(self, question: object) -> str:
        if not isinstance(question, str):
            raise QuestionError(f"question must be a string, got {type(question).__name__}")
        if self.image_token in question:
            raise QuestionError(f"question must not contain the image token {self.image_token!r}")
        return question

    def _head_ids(self, rows: int, cols: int) -> list[int] | None:
        if (rows, cols) not in self._image_ids:
            head = self.head(rows, cols)
            ids = self.tokenizer.encode(head, add_special_tokens=True).ids
            # the head ends in a special token, so the question cannot merge with it; the check also
            # rules out a post-processor that appends tokens (then every prompt is tokenized whole)
            same = all(
                ids + self.tokenizer.encode(q + self.suffix, add_special_tokens=False).ids
                == self.tokenizer.encode(head + q + self.suffix).ids
                for q in _CHECKS
            )
            self._image_ids[(rows, cols)] = ids if same else None
        return self._image_ids[(rows, cols)]

    def encode(self, rows_of_ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask), int64, padded on the right to the longest prompt."""
        length = max(len(ids) for ids in rows_of_ids)
        if length > self.max_tokens:
            raise QuestionError(f"prompt is {length} tokens, over the backbone's limit of {self.max_tokens}")
        ids = np.full((len(rows_of_ids), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows_of_ids), length), dtype=np.int64)
        for row, tokens in enumerate(rows_of_ids):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        return ids, mask

    # ------------------------------------------------------------------ batch
    def batch(self, images: list[Image.Image], questions: list[object], pool: Any = None) -> dict[str, np.ndarray]:
        """``input_ids``, ``attention_mask``, ``pixel_values`` for decoded images (tiles in ``pool``
        threads when given: PIL and numpy release the GIL)."""
        use_pool = pool is not None and len(images) > 1
        rendered = concurrently(pool, self.render, images) if use_pool else [self.render(image) for image in images]
        ids, mask = self.encode([self.token_ids(q, rows, cols) for q, (_, rows, cols) in zip(questions, rendered)])
        most = max(len(views) for views, _, _ in rendered)
        pixels = np.empty((len(rendered), most, 3, self.tile, self.tile), dtype=np.float32)
        for row, (views, _, _) in enumerate(rendered):  # written in place: no copy of the float tiles
            self.normalize(views, out=pixels[row, : len(views)])
            pixels[row, len(views) :] = 0  # shorter rows padded with empty tiles, as the processor does
        return {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels}


def _normalize_table(scale: float, mean: Any, std: Any) -> np.ndarray:
    """(3, 256) float32: for each channel and uint8 value, transformers' ``rescale`` (float64 multiply,
    cast to float32) then ``normalize`` ((x - mean) / std in float32)."""
    values = (np.arange(256, dtype=np.float64) * scale).astype(np.float32)
    mean, std = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(((values[:, None] - mean) / std).T)
