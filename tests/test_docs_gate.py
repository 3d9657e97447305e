"""The offline question-aware ``docs`` gate: training on generated pages, the shipped ``builtin:docs``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from resgate_router.cli import main as cli_main
from resgate_router.gate.docs import DocsGate
from resgate_router.gate.loading import builtin_gates, load_gate
from resgate_router.policies import get_policy

LADDER = "384,512,768,1024,full"
KEYS = ["384", "512", "768", "1024", "full"]


def _page(text_px: int, seed: int, width: int = 850, height: int = 1100) -> Image.Image:
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=text_px)
    y = 40 + seed % 7
    while y + 2 * text_px < height - 40:
        draw.text((40 + seed % 11, y), f"Invoice {seed:03d} DATE 12/10/98 Total {y}.00", font=font, fill=0)
        y += int(1.8 * text_px)
    return page


def _labels(root: Path, pages: int = 30) -> Path:
    """Pages of large text answer at 384, pages of small text only from 1024 up (a visible property)."""
    rows = []
    for i in range(pages):
        small = i % 2 == 0
        path = root / f"p{i}.png"
        _page(9 if small else 30, i).save(path)
        label = 3 if small else 0
        runs = {k: {"answer": "", "score": float(j >= label), "visual_tokens": None} for j, k in enumerate(KEYS)}
        rows.append(
            {
                "id": f"q{i}",
                "image": path.name,
                "question": "What is the total?",
                "answers": ["x"],
                "label": label,
                "runs": runs,
            }
        )
    out = root / "labels.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def test_training_is_deterministic_and_learns_text_size(tmp_path: Path) -> None:
    labels = _labels(tmp_path)
    for name in ("a", "b"):
        assert cli_main(["train", "--gate", "docs", "--data", str(labels), "--out", str(tmp_path / name)]) == 0
    assert (tmp_path / "a" / "head.json").read_bytes() == (tmp_path / "b" / "head.json").read_bytes()
    gate = load_gate(tmp_path / "a")
    assert isinstance(gate, DocsGate)
    assert gate.predict(_page(30, 101), "What is the total?").resolution in (384, 512)
    assert gate.predict(_page(9, 102), "What is the total?").resolution in (1024, "full")


def test_train_docs_refuses_another_ladder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = _labels(tmp_path, pages=10)
    code = cli_main(
        ["train", "--gate", "docs", "--data", str(labels), "--ladder", "card", "--out", str(tmp_path / "g")]
    )
    assert code == 2 and "made on the ladder 384,512,768,1024,full" in capsys.readouterr().err


#: decisions of the shipped gate (SmolVLM accounting: equal-cost rungs upgraded), recorded when it was trained
RECORDED = [
    ((30, 1), 'What is the value entered for the field labeled "Date" on this form?', "512"),
    ((30, 2), "What is the company name on this receipt?", "512"),
    ((9, 3), "What is the total amount on this receipt?", "1024"),
]


def test_builtin_docs_loads_and_reproduces_recorded_decisions() -> None:
    assert "docs" in builtin_gates()
    gate = load_gate("builtin:docs", policy=get_policy("idefics3"))
    assert isinstance(gate, DocsGate) and gate.ladder.spec() == LADDER
    for (text_px, seed), question, expected in RECORDED:
        assert gate.predict(_page(text_px, seed), question).class_name == expected


def test_builtin_docs_is_question_aware() -> None:
    gate = load_gate("builtin:docs")
    page = _page(14, 5)
    answers = {
        q: gate.predict(page, q).probabilities
        for q in ("What is the company name on this receipt?", "What is the date on this receipt?")
    }
    assert len(set(answers.values())) == 2


def test_builtin_names_are_checked() -> None:
    from resgate_router.errors import ConfigError

    with pytest.raises(ConfigError, match="builtin:docs"):
        load_gate("builtin:nope")


def test_no_gate_reads_the_annotations() -> None:
    """``annotations.jsonl`` is for analysis only: no module of the package names it."""
    package = Path(__file__).parents[1] / "resgate_router"
    assert not [p for p in package.rglob("*.py") if "annotations.jsonl" in p.read_text(encoding="utf-8")]


def test_evaluate_scores_the_gates_own_decisions(tmp_path: Path) -> None:
    """``resgate evaluate`` on a docs gate scores its decisions (its threshold), which are not the
    most probable class of its monotone per-rung probabilities."""
    import numpy as np

    from resgate_router.tools.datasets import load_samples

    labels = _labels(tmp_path, pages=12)
    out = tmp_path / "eval.json"
    assert cli_main(["evaluate", "--gate", "builtin:docs", "--data", str(labels), "--out", str(out)]) == 0
    samples = load_samples(labels).samples
    decisions = load_gate("builtin:docs").predict_batch([s.image for s in samples], [s.question for s in samples])
    truth = np.array([s.label for s in samples])
    argmax = np.array([np.argmax(d.probabilities) for d in decisions])
    chosen = np.array([d.label for d in decisions])
    assert (argmax != chosen).any()  # the two readings differ on these pages
    assert json.loads(out.read_text())["accuracy"] == pytest.approx(float((chosen == truth).mean()))
