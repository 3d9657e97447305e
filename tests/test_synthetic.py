"""Synthetic documents: format, determinism, size mix, argument checks, and one real OCR reading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from resgate_router.errors import ConfigError
from resgate_router.tools.scoring import contains
from resgate_router.tools.synthetic import KINDS, generate_documents


def _items(qa: Path) -> list[dict]:
    return [json.loads(line) for line in qa.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def qa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_documents(tmp_path_factory.mktemp("docs") / "set", 8, seed=7)


def test_jsonl_format_and_images(qa: Path) -> None:
    items = _items(qa)
    assert qa.name == "qa.jsonl" and len({item["id"] for item in items}) == len(items)
    for item in items:
        assert isinstance(item["id"], str) and isinstance(item["question"], str) and item["question"].endswith("?")
        assert (
            isinstance(item["answers"], list)
            and item["answers"]
            and all(isinstance(a, str) and a for a in item["answers"])
        )
        assert item["kind"] in KINDS and isinstance(item["text_px"], int) and item["text_px"] >= 10
        assert not Path(item["image"]).is_absolute() and item["image"].startswith("images/")
        with Image.open(qa.parent / item["image"]) as image:
            assert image.size == (item["width"], item["height"]) and image.mode == "RGB"
    per_page: dict[str, int] = {}
    for item in items:
        per_page[item["image"]] = per_page.get(item["image"], 0) + 1
    assert len(per_page) == 8 and all(2 <= count <= 4 for count in per_page.values())


def test_kinds_cycle_and_look_like_their_kind(qa: Path) -> None:
    items = _items(qa)
    pages = {item["image"]: item for item in items}
    assert sorted(item["kind"] for item in pages.values()) == sorted(KINDS * 2)
    assert [pages[name]["kind"] for name in sorted(pages)] == [
        pages[name]["image"].split("/")[1].split("-")[0] for name in sorted(pages)
    ]
    receipt = next(item for item in items if item["kind"] == "receipt")
    assert receipt["height"] > 2 * receipt["width"]  # tall and narrow
    invoice_questions = {item["question"] for item in items if item["kind"] == "invoice"}
    form_questions = {item["question"] for item in items if item["kind"] == "form"}
    assert any("invoice" in q.lower() or "amount" in q.lower() or "total" in q.lower() for q in invoice_questions)
    assert all(q.startswith("What is the value entered for the field labeled") or "form" in q for q in form_questions)


def test_text_sizes_span_a_wide_range(qa: Path) -> None:
    sizes = [item["text_px"] for item in _items(qa)]
    assert min(sizes) < 24 and max(sizes) >= 40 and max(sizes) >= 2.5 * min(sizes)
    assert len(set(sizes)) >= 6


def test_deterministic_per_seed_and_pages_independent_of_n(qa: Path, tmp_path: Path) -> None:
    again = generate_documents(str(tmp_path / "again"), 4, seed=7)  # the first 4 pages of the fixture's 8
    first_four = [item for item in _items(qa) if int(item["id"].split("-")[1]) < 4]
    assert _items(again) == first_four
    for name in sorted({item["image"] for item in first_four}):
        with Image.open(qa.parent / name) as a, Image.open(again.parent / name) as b:
            assert a.tobytes() == b.tobytes()
    regenerated = generate_documents(tmp_path / "again", 4, seed=7)
    assert regenerated.read_bytes() == again.read_bytes()
    other = generate_documents(tmp_path / "other", 1, seed=8)
    assert _items(other)[0]["answers"] != first_four[0]["answers"]


def test_kinds_argument(tmp_path: Path) -> None:
    items = _items(generate_documents(tmp_path / "r", 2, kinds=("receipt",)))
    assert {item["kind"] for item in items} == {"receipt"} and len({item["image"] for item in items}) == 2
    items = _items(generate_documents(tmp_path / "t", 1, kinds="table"))  # one name is accepted
    assert {item["kind"] for item in items} == {"table"}
    items = _items(generate_documents(tmp_path / "fi", 3, kinds=("form", "invoice")))
    assert [item["kind"] for item in items if item["id"].endswith("-q0")] == ["form", "invoice", "form"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0}, "positive integer"),
        ({"n": -3}, "positive integer"),
        ({"n": 2.5}, "positive integer"),
        ({"n": True}, "positive integer"),
        ({"kinds": ()}, "available: invoice, form, receipt, table"),
        ({"kinds": ("invoice", "letter")}, "available: invoice, form, receipt, table"),
    ],
)
def test_bad_arguments_raise_config_error(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        generate_documents(tmp_path / "bad", **kwargs)
    assert not (tmp_path / "bad").exists()  # nothing written


def test_real_ocr_reads_every_answer_at_native_and_not_small_text_at_384(tmp_path: Path) -> None:
    """One receipt through the real reader: the page keeps its promise (answers legible, text size matters)."""
    pytest.importorskip("rapidocr_onnxruntime")
    from resgate_router.adapters.ocr import OCRAdapter

    qa = generate_documents(tmp_path, 1, seed=1, kinds=("receipt",))
    items = _items(qa)
    reader = OCRAdapter()
    native = "\n".join(reader.read(qa.parent / items[0]["image"]))
    low = "\n".join(reader.read(qa.parent / items[0]["image"], 384))
    assert all(contains(native, item["answers"]) for item in items)
    small = [item for item in items if item["text_px"] < 20]
    assert small and not any(contains(low, item["answers"]) for item in small)
    assert contains(low, max(items, key=lambda item: item["text_px"])["answers"])  # the store name's large text
