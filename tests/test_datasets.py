"""Sample loading: the JSONL format, CARES parquet, Hugging Face datasets; errors name line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from resgate_router.tools.datasets import DataError, Sample, load_samples, write_samples


def _page(path: Path, size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, "white").save(path)
    return path


def _jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_rows_relative_images_labels_and_extra_fields(tmp_path: Path) -> None:
    _page(tmp_path / "images" / "a.png")
    data = _jsonl(
        tmp_path / "qa.jsonl",
        [
            {"id": "a", "image": "images/a.png", "question": "Q?", "answers": ["12"], "label": 1, "kind": "invoice"},
            {"id": "b", "image": str(tmp_path / "images" / "a.png"), "question": "Date?", "answers": "1/2/99"},
        ],
    )
    loaded = load_samples(data)
    a, b = loaded.samples
    assert a.image == tmp_path / "images" / "a.png" and a.label == 1 and a.meta == {"kind": "invoice"}
    assert b.answers == ["1/2/99"] and b.label is None and b.image.is_file()
    # round trip through the writer: same rows, image paths relative to the new file
    out = write_samples(loaded, tmp_path / "copy.jsonl")
    assert json.loads(out.read_text().splitlines()[0])["image"] == "images/a.png"
    assert [s.id for s in load_samples(out)] == ["a", "b"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("{not json", "qa.jsonl:2: not valid JSON"),
        ("[1, 2]", "qa.jsonl:2: expected a JSON object"),
        ({"image": "a.png", "question": "q"}, "qa.jsonl:2: field 'id': missing"),
        ({"id": "x", "question": "q"}, "qa.jsonl:2: field 'image': missing"),
        ({"id": "x", "image": "a.png", "question": 3}, "field 'question': expected a string"),
        ({"id": "x", "image": "a.png", "question": "q", "answers": [1]}, "field 'answers': expected a list of strings"),
        ({"id": "x", "image": "a.png", "question": "q", "label": "high"}, "field 'label': expected a class index"),
        ({"id": "x", "image": "a.png", "question": "q", "label": -1}, "field 'label': expected a class index >= 0"),
        ({"id": "ok", "image": "a.png", "question": "q"}, "field 'id': duplicate id 'ok'"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path: Path, row: object, message: str) -> None:
    _page(tmp_path / "a.png")
    data = _jsonl(tmp_path / "qa.jsonl", [{"id": "ok", "image": "a.png", "question": "q"}, row])
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_samples(data)


def test_missing_images_are_reported_unless_strict(tmp_path: Path) -> None:
    _page(tmp_path / "a.png")
    rows = [{"id": "a", "image": "a.png", "question": "q"}, {"id": "b", "image": "gone.png", "question": "q"}]
    data = _jsonl(tmp_path / "qa.jsonl", rows)
    loaded = load_samples(data)
    assert [s.id for s in loaded] == ["a"] and len(loaded.missing) == 1 and "gone.png" in loaded.missing[0]
    with pytest.raises(DataError, match=r"qa.jsonl:2: field 'image': no such file"):
        load_samples(data, strict=True)
    with pytest.raises(DataError, match="no usable samples"):
        load_samples(_jsonl(tmp_path / "none.jsonl", rows[1:]))


def test_require_label_and_missing_file(tmp_path: Path) -> None:
    _page(tmp_path / "a.png")
    data = _jsonl(tmp_path / "qa.jsonl", [{"id": "a", "image": "a.png", "question": "q"}])
    with pytest.raises(DataError, match="field 'label': missing .*resgate label"):
        load_samples(data, require_label=True)
    with pytest.raises(DataError, match="no such data file"):
        load_samples(tmp_path / "absent.jsonl")


def test_cares_parquet_columns(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    _page(tmp_path / "mid" / "0.png")
    frame = pd.DataFrame(
        {"question": ["What is the total?", "Who signed?"], "mid_path": ["mid/0.png", "mid/0.png"], "hard": [2, 0]}
    )
    frame.to_parquet(tmp_path / "train.parquet")
    samples = load_samples(tmp_path / "train.parquet", require_label=True).samples
    assert [(s.id, s.label, s.question) for s in samples] == [("0", 2, "What is the total?"), ("1", 0, "Who signed?")]
    assert samples[0].image == tmp_path / "mid" / "0.png" and samples[0].answers == []
    pd.DataFrame({"question": ["q"]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="missing column 'mid_path'"):
        load_samples(tmp_path / "bad.parquet")


def test_hugging_face_dataset_from_disk_with_image_feature(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    pages = [Image.new("RGB", (32 + 8 * i, 24), "white") for i in range(3)]
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "question": datasets.Value("string"),
            "answers": datasets.Sequence(datasets.Value("string")),
            "label": datasets.Value("int64"),
        }
    )
    data = datasets.Dataset.from_dict(
        {"image": pages, "question": ["q0", "q1", "q2"], "answers": [["a"], ["b"], ["c"]], "label": [0, 1, 2]},
        features=features,
    )
    data.save_to_disk(str(tmp_path / "ds"))
    samples = load_samples(tmp_path / "ds", require_label=True).samples
    assert [s.id for s in samples] == ["0", "1", "2"] and [s.label for s in samples] == [0, 1, 2]
    assert samples[2].image.size == (48, 24) and samples[1].answers == ["b"]
    with pytest.raises(DataError, match="only samples with image paths"):
        Sample.to_json(samples[0])
