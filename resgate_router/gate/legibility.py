"""``LegibilityGate``: a zero-parameter baseline that needs no weights, no torch and no OCR.

It estimates how tall the text on the page is, with classical image analysis, and picks the smallest
ladder rung at which that text stays at least ``min_text_px`` tall. It is question-agnostic by design:
every question on a page gets the same rung, so it is the baseline a question-aware gate must beat.

How the text height is measured (Pillow + numpy only):

1. grayscale copy, reduced by an integer factor (box filter) when its longest side is at least twice
   ``analysis_size``;
2. local-mean binarisation (ink = darker than its surroundings; a dark page is inverted); long
   horizontal and vertical rules (form boxes, underlines, table lines) are erased, so they neither
   merge text lines nor count as text;
3. the page is cut into vertical strips ``strip_px`` wide; in each strip the rows holding ink form
   bands, one per text line in that strip. Bands too thin (noise), too tall (pictures, merged
   blocks), or too full/empty of ink are dropped;
4. the ``percentile``-th band height, in native pixels, is the text height: a low percentile, so the
   small print answers often live in is covered.

A rung ``r`` shows the text ``height * min(r, native) / native`` px tall (``full`` and rungs at or
above the native size: the native height). When no rung keeps the text legible (small print, or no
text found: a blank or unreadable page) the gate fails safe to the smallest rung that sends every
native pixel: more pixels than the page has cannot make it more legible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import cast

import numpy as np
from PIL import Image, ImageChops, ImageFilter, ImageOps

from ..images import ImageInput, load_image
from ..ladder import Ladder
from ..policies import FamilyPolicy, get_policy
from .decision import GateDecision, upgrade_at_equal_cost
from .protocol import GateBasics

__all__ = ["LegibilityGate", "TextBands", "text_bands"]


class LegibilityGate(GateBasics):
    """Smallest rung at which the page's (small) text stays ``min_text_px`` tall.

    ``min_text_px=7.0`` was calibrated on synthetic scan-like form pages (fax-style bilevel and grey
    JPEG scans, 11-18 px text, read by the ``ocr`` reader at 384/512/768/native): the smallest
    threshold whose mean recall of the pages' field values matches reading every page at native.
    """

    def __init__(
        self,
        ladder: str | Ladder = "card",
        *,
        min_text_px: float = 7.0,
        percentile: float = 20.0,
        analysis_size: int = 2048,
        strip_px: int = 32,
        policy: str | FamilyPolicy | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        """``min_text_px``: the text height (as this gate measures it: a line's ink extent) a rung must
        keep; ``percentile``: which band height counts as the page's text height (lower covers smaller
        print, at a higher rung); ``analysis_size``: pages at least twice this long are analysed reduced
        by an integer factor (never below it: keep it at least the largest numeric rung); ``strip_px``:
        strip width in analysed px; ``policy``: a family policy or name whose token costs break ties
        upwards (module docstring)."""
        if min_text_px <= 0 or not 0 <= percentile <= 100 or analysis_size < 64 or strip_px < 4:
            raise ValueError("need min_text_px > 0, 0 <= percentile <= 100, analysis_size >= 64, strip_px >= 4")
        self.ladder = Ladder.parse(ladder)
        self.min_text_px, self.percentile = float(min_text_px), float(percentile)
        self.analysis_size, self.strip_px = int(analysis_size), int(strip_px)
        self.policy = get_policy(policy) if isinstance(policy, str) else policy
        names = list(class_names or _default_names(self.ladder))
        if len(names) != len(self.ladder):
            raise ValueError(f"{len(names)} class names for a ladder of {len(self.ladder)} rungs")
        self.config = SimpleNamespace(class_names=names, num_classes=len(self.ladder))

    # ------------------------------------------------------------------ gate protocol
    needs_pixels = True

    def predict_batch(self, images: Sequence[ImageInput], questions: Sequence[str]) -> list[GateDecision]:
        """One decision per image; the questions are ignored (question-agnostic by design)."""
        decisions = []
        for image in images:
            pixels = load_image(image)
            native = max(pixels.size)
            label = self.choose(self._text_height(pixels), native)
            label = upgrade_at_equal_cost(label, self.ladder, self.policy, pixels.size)
            one_hot = [1.0 if k == label else 0.0 for k in range(len(self.ladder))]
            decisions.append(GateDecision.from_probabilities(one_hot, self.ladder, self.config.class_names, native))
        return decisions

    def choose(self, text_height: float, native_long_side: int) -> int:
        """The class of the smallest rung keeping ``text_height`` (native px) ``min_text_px`` tall;
        when none does, the smallest rung that sends every native pixel (else the top rung)."""
        sent = [self.ladder.pixels(rung, native_long_side) for rung in self.ladder.rungs]
        for label, pixels in enumerate(sent):
            if text_height * pixels / native_long_side >= self.min_text_px:
                return label
        return sent.index(native_long_side) if native_long_side in sent else len(sent) - 1

    # ------------------------------------------------------------------ analysis
    def estimate_text_height(self, image: ImageInput) -> float:
        """The page's text height in native px (0.0 when no text is found)."""
        return self._text_height(load_image(image))

    def _text_height(self, image: Image.Image) -> float:
        heights = text_bands(image, analysis_size=self.analysis_size, strip_px=self.strip_px).heights
        return float(np.percentile(heights, self.percentile)) if heights.size else 0.0


@dataclass(frozen=True)
class TextBands:
    """What the band analysis finds on a page, in native px: ``heights`` of the text-like bands,
    the ``stroke`` width, and the page's ``ink`` share (after rules are erased; 0 on a blank page)."""

    heights: np.ndarray
    stroke: float
    ink: float


def text_bands(image: Image.Image, *, analysis_size: int = 2048, strip_px: int = 32) -> TextBands:
    """The text-like ink bands of ``image`` (steps 1-3 of the module docstring)."""
    factor = max(1, max(image.size) // analysis_size)
    gray = image.convert("L").reduce(factor)  # integer box reduction: fast, no resampling blur
    ink = _binarize(gray)
    if ink is None:
        return TextBands(np.zeros(0), 0.0, 0.0)
    ink = _erase_rules(ink, max(16, max(ink.shape) // 24))
    stroke = _stroke_width(ink)
    heights = _band_heights(ink, stroke, strip=strip_px) * factor
    return TextBands(heights, stroke * factor, float(ink.mean()))


def _default_names(ladder: Ladder) -> list[str]:
    if len(ladder) == 3:
        return ["low", "medium", "high"]
    return [str(r) for r in ladder.rungs]


def _binarize(gray: Image.Image, min_contrast: int = 48, offset: int = 24) -> np.ndarray | None:
    """Ink mask (True = ink): pixels at least ``offset`` levels darker than their neighbourhood's
    mean (local, so dark scan borders, shading and faint print do not fool it); None when the page
    has no contrast at all (blank, uniform)."""
    cumulative = np.cumsum(gray.histogram())
    low, median, high = np.searchsorted(cumulative, np.array([0.005, 0.5, 0.995]) * cumulative[-1])
    if high - low < min_contrast:
        return None
    if median < 128:  # light text on a dark page
        gray = ImageOps.invert(gray)
    # the local mean over about 1/25 of the page, computed on a ~128 px copy
    step = max(1, max(gray.size) // 128)
    background = gray.reduce(step).filter(ImageFilter.BoxBlur(2)).resize(gray.size, Image.Resampling.BILINEAR)
    return np.asarray(ImageChops.subtract(background, gray)) > offset


def _erase_rules(ink: np.ndarray, block: int) -> np.ndarray:
    """Ink minus horizontal and vertical rules: ``block``-px blocks of a row (column) at least 90%
    inked. Rules longer than two blocks lose all but their ends; text strokes are shorter."""
    rows, width = ink.shape
    full = int(0.9 * block)
    if width >= block:
        cut = width // block * block
        flat = ink[:, :cut].reshape(rows, -1, block).sum(axis=2, dtype=np.int16) >= full
        ink[:, :cut] &= ~np.repeat(flat, block, axis=1)
    if rows >= block:
        cut = rows // block * block
        tall = ink[:cut].reshape(-1, block, width).sum(axis=1, dtype=np.int16) >= full
        ink[:cut] &= ~np.repeat(tall, block, axis=0)
    return ink


def _stroke_width(ink: np.ndarray) -> float:
    """Median length of the horizontal ink runs (every 4th row): the width of a vertical stroke."""
    rows = ink[::4]
    padded = np.zeros((rows.shape[0], rows.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = rows
    edges = np.diff(padded, axis=1).ravel()
    lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return float(np.median(lengths)) if lengths.size else 1.0


def _band_heights(ink: np.ndarray, stroke: float, *, strip: int) -> np.ndarray:
    """Heights of the ink bands (text lines) of each vertical strip, filtered to text-like ones: at
    least 2.5 strokes tall (drops dashes, rules and specks), at most 1/8 of the page."""
    rows, width = ink.shape
    strips = max(1, width // strip)
    if width < strip:
        strip = width
    counts = ink[:, : strips * strip].reshape(rows, strips, strip).sum(axis=2, dtype=np.int32)
    padded = np.zeros((strips, rows + 2), dtype=np.int8)
    padded[:, 1:-1] = (counts > 0).T
    edges = np.diff(padded, axis=1)
    column, start = np.nonzero(edges == 1)
    _, end = np.nonzero(edges == -1)
    heights = end - start
    cumulative = np.zeros((strips, rows + 1), dtype=np.int64)
    cumulative[:, 1:] = np.cumsum(counts.T, axis=1)
    fill = (cumulative[column, end] - cumulative[column, start]) / (heights * strip)
    text_like = (heights >= max(3.0, 2.5 * stroke)) & (heights <= max(3, rows // 8)) & (fill >= 0.03) & (fill <= 0.75)
    return cast(np.ndarray, heights[text_like].astype(np.float64))
