"""The zero-parameter ``legibility`` gate on pages rendered here with PIL (no weights, no OCR)."""

from __future__ import annotations

import statistics
import time

import pytest
from PIL import Image, ImageDraw, ImageFont

from resgate_router.gate import GateDecision
from resgate_router.gate.legibility import LegibilityGate
from resgate_router.gate.loading import load_gate
from resgate_router.ladder import FULL, Ladder

FIVE = "384,512,768,1024,full"


def _page(text_px: int, width: int = 1700, height: int = 2200, *, rules: bool = False) -> Image.Image:
    """A form-like page filled with ``text_px`` text (optionally boxed by table rules)."""
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=text_px)
    y, row = int(height * 0.05), 0
    while y + 2 * text_px < height * 0.95:
        draw.text(
            (int(width * 0.06), y),
            f"Invoice No: INV-{48213 + row}   DATE: 12/10/98   Total 907.{row % 100:02d}",
            font=font,
            fill="black",
        )
        if rules:
            draw.line(
                [(int(width * 0.05), y + int(1.4 * text_px)), (int(width * 0.95), y + int(1.4 * text_px))],
                fill="black",
                width=2,
            )
        y, row = y + int(1.8 * text_px), row + 1
    if rules:
        draw.line([(int(width * 0.5), 0), (int(width * 0.5), height)], fill="black", width=3)
    return page


def test_text_height_tracks_the_rendered_size() -> None:
    gate = LegibilityGate(FIVE)
    heights = [gate.estimate_text_height(_page(px)) for px in (8, 12, 16, 24, 32, 48)]
    assert heights == sorted(heights) and heights[0] > 0
    for px, height in zip((8, 12, 16, 24, 32, 48), heights):
        assert 0.4 * px <= height <= 1.2 * px, (px, height)


def test_larger_text_never_gets_a_higher_rung() -> None:
    gate = LegibilityGate(FIVE)
    labels = [gate.predict(_page(px), "q").label for px in (6, 8, 12, 16, 24, 32, 48, 64, 96, 128)]
    assert labels == sorted(labels, reverse=True)
    assert labels[0] == 4 and labels[-1] == 0  # tiny print needs the full page, posters do not


def test_rules_and_table_lines_do_not_change_the_text_height() -> None:
    gate = LegibilityGate(FIVE)
    plain, boxed = gate.estimate_text_height(_page(16)), gate.estimate_text_height(_page(16, rules=True))
    assert abs(plain - boxed) <= 0.2 * plain, (plain, boxed)


def test_question_agnostic() -> None:
    gate, page = LegibilityGate(), _page(12)
    decisions = gate.predict_batch([page, page, page], ["What is the total?", "", "date " * 500])
    assert decisions[0] == decisions[1] == decisions[2]


@pytest.mark.parametrize("ladder", ["512,full", "card", "cares", "384,512,768,full", FIVE])
def test_decisions_on_any_ladder(ladder: str) -> None:
    gate = LegibilityGate(ladder)
    parsed = Ladder.parse(ladder)
    assert gate.ladder == parsed and gate.config.num_classes == len(parsed) == len(gate.config.class_names)
    for page in (_page(8), _page(20), _page(48)):
        decision = gate.predict(page, "q")
        assert isinstance(decision, GateDecision)
        assert (
            decision.resolution == parsed[decision.label]
            and decision.class_name == gate.config.class_names[decision.label]
        )
        assert decision.probabilities == tuple(float(k == decision.label) for k in range(len(parsed)))
        assert decision.expected_resolution == parsed.expected_resolution(decision.probabilities, max(page.size))
    assert gate.predict(_page(8), "q").label == len(parsed) - 1  # small print: the top rung


def test_choose_counts_rungs_above_native_as_native() -> None:
    gate = LegibilityGate(FIVE, min_text_px=10)
    assert gate.choose(20.0, 2000) == 3  # 20 px at 1024/2000 = 10.2 px; at 768: 7.7 px
    assert gate.choose(40.0, 2000) == 1  # 10.2 px at 512
    assert gate.choose(12.0, 600) == 1  # 7.7 px at 384, 10.2 px at 512
    small = LegibilityGate("384,768,1024", min_text_px=10)
    assert small.choose(12.0, 700) == 1  # 768 of a 700 px page sends it as it is: 12 px
    assert small.choose(9.0, 700) == 1  # never enough: 768 already sends every pixel there is
    assert small.choose(9.0, 3000) == 2  # and no rung does here: the top one
    assert gate.choose(0.0, 3000) == 4  # no text found: fail safe to every native pixel ...
    assert gate.choose(0.0, 1000) == 3  # ... which 1024 already sends for a 1000 px page
    assert gate.choose(5.0, 900) == 3


def test_a_family_policy_adds_pixels_only_where_they_cost_nothing() -> None:
    from resgate_router.policies import get_policy

    smolvlm = get_policy("idefics3")
    plain, aware = LegibilityGate(FIVE), LegibilityGate(FIVE, policy="idefics3")
    for page in (_page(96), _page(20, 754, 1000), _page(10, 754, 1000)):
        chosen, upgraded = plain.predict(page, "q"), aware.predict(page, "q")
        cost = [smolvlm.visual_tokens(*page.size, r) for r in aware.ladder.rungs]
        assert upgraded.label >= chosen.label and cost[upgraded.label] == cost[chosen.label]
        assert upgraded.label + 1 == len(cost) or cost[upgraded.label + 1] > cost[upgraded.label]
    assert aware.predict(_page(96), "q").resolution == 512  # 384 and 512 are both one 512 px tile
    assert LegibilityGate(FIVE, policy="qwen2_vl").predict(_page(96), "q").resolution == 384  # costs differ


def test_lower_min_text_px_never_picks_a_higher_rung() -> None:
    page = _page(14)
    labels = [LegibilityGate(FIVE, min_text_px=m).predict(page, "").label for m in (4, 8, 12, 16, 24)]
    assert labels == sorted(labels) and labels[0] < labels[-1]


def _rgba_page() -> Image.Image:
    page = Image.new("RGBA", (800, 1000), (0, 0, 0, 0))  # transparent black: flattened on white
    ImageDraw.Draw(page).text((40, 40), "TOTAL 907.25", font=ImageFont.load_default(size=40), fill=(0, 0, 0, 255))
    return page


@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGB", (1, 1), "white"),
        Image.new("RGB", (1700, 2200), "white"),
        Image.new("RGB", (1700, 2200), "black"),
        Image.new("L", (3000, 10), 255),
        Image.new("RGB", (12, 4000), "gray"),
        _page(16).convert("L"),
        _page(16).convert("1"),
        _page(16).convert("P"),
        _page(16).crop((0, 0, 1700, 120)),  # one line across an extreme aspect ratio
        _rgba_page(),
    ],
    ids=["1x1", "blank", "black", "L-sliver", "tall-sliver", "L", "1-bit", "P", "one-line", "RGBA"],
)
def test_odd_images_give_a_decision(image: Image.Image) -> None:
    gate = LegibilityGate(FIVE)
    decision = gate.predict(image, "q")
    assert 0 <= decision.label < 5 and decision.resolution == gate.ladder[decision.label]
    assert gate.estimate_text_height(image) >= 0.0


def test_blank_and_uniform_pages_fail_safe_to_native_pixels() -> None:
    gate = LegibilityGate(FIVE)
    for image, rung in ((Image.new("RGB", (1700, 2200), "white"), FULL), (Image.new("RGB", (900, 900), "black"), 1024)):
        assert gate.estimate_text_height(image) == 0.0
        assert gate.predict(image, "q").resolution == rung


def test_light_text_on_a_dark_page_is_measured() -> None:
    from PIL import ImageOps

    gate = LegibilityGate(FIVE)
    dark = ImageOps.invert(_page(24))
    assert gate.estimate_text_height(dark) == pytest.approx(gate.estimate_text_height(_page(24)), rel=0.2)


def test_inputs_as_path_and_bytes(tmp_path) -> None:
    page = _page(24, 850, 1100)
    path = tmp_path / "page.png"
    page.save(path)
    gate = LegibilityGate()
    assert gate.predict(str(path), "q") == gate.predict(path.read_bytes(), "q") == gate.predict(page, "q")


def test_load_gate_builds_it_for_any_ladder() -> None:
    assert isinstance(load_gate("legibility"), LegibilityGate) and load_gate("legibility").ladder.spec() == "card"
    assert load_gate("legibility", ladder=FIVE).ladder == Ladder.parse(FIVE)
    assert load_gate("legibility", ladder=FIVE).policy is None
    assert load_gate("legibility", ladder=FIVE, policy="idefics3").policy.name == "idefics3"


def test_invalid_settings_raise() -> None:
    for kwargs in ({"min_text_px": 0}, {"percentile": 120}, {"analysis_size": 10}, {"class_names": ["a"]}):
        with pytest.raises(ValueError):
            LegibilityGate("card", **kwargs)


def test_fast_enough_on_a_full_page() -> None:
    """CPU time, not wall time: the test machine's cores are shared, a slow algorithm still fails."""
    gate, page = LegibilityGate(FIVE), _page(14)
    gate.predict(page, "warm-up")
    timings = []
    for _ in range(7):
        started = time.process_time()
        gate.predict(page, "q")
        timings.append(time.process_time() - started)
    assert statistics.median(timings) < 0.25, timings
