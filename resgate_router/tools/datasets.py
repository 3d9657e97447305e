"""Evaluation and training samples: one (image, question, answers[, label]) per row, from three formats.

* **JSONL** (this project's format), one object per line::

      {"id": "inv-3-q1", "image": "images/inv-3.png", "question": "Total?", "answers": ["$12.50"], "label": 1}

  ``image`` is a path relative to the file (or absolute); ``label`` (a class index) is optional;
  other fields are kept in ``Sample.meta``. ``resgate label`` writes this format with ``label`` set.
* **CARES parquet** (the reference code's columns): ``question``, ``mid_path`` (the image), ``hard``
  (the class index); optional ``id``/``answers``. Needs pandas + pyarrow (the ``train`` extra).
* **Hugging Face datasets**: a directory written by ``Dataset.save_to_disk``, or ``hf:NAME[:SPLIT]``
  for ``datasets.load_dataset`` (default split ``train``). Columns ``question``, ``image`` (a PIL
  image or a path) and optionally ``id``, ``answers`` (list or string), ``label``.

Bad rows raise :class:`DataError` naming the file, line and field. A missing image file is reported
(``LoadedSamples.missing``) and the row skipped, or raised with ``strict=True``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._extras import require
from ..errors import InputError

__all__ = ["Sample", "LoadedSamples", "DataError", "load_samples", "write_samples"]


class DataError(InputError):
    """A data file or row that cannot be read as samples; names the file, line and field."""


@dataclass
class Sample:
    id: str
    image: Any  # a path (str/Path) or a PIL image (Hugging Face datasets)
    question: str
    answers: list[str] = field(default_factory=list)
    label: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self, relative_to: Path | None = None) -> dict[str, Any]:
        """The JSONL row (image paths relative to ``relative_to`` when inside it)."""
        image = self.image
        if isinstance(image, (str, Path)):
            image = Path(image)
            if relative_to is not None:
                try:
                    image = image.resolve().relative_to(relative_to.resolve())
                except ValueError:
                    image = image.resolve()
            image = image.as_posix()
        else:
            raise DataError(f"sample {self.id!r}: only samples with image paths can be written to JSONL")
        row: dict[str, Any] = {"id": self.id, "image": image, "question": self.question, "answers": list(self.answers)}
        if self.label is not None:
            row["label"] = self.label
        return {**row, **{k: v for k, v in self.meta.items() if k not in row}}


@dataclass
class LoadedSamples:
    samples: list[Sample]
    missing: list[str] = field(default_factory=list)  # "where: path" of rows whose image file is absent

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __len__(self) -> int:
        return len(self.samples)


def load_samples(source: str | Path, *, strict: bool = False, require_label: bool = False) -> LoadedSamples:
    """Samples from a ``.jsonl`` file, a ``.parquet`` file, a ``save_to_disk`` directory or ``hf:NAME[:SPLIT]``."""
    text = str(source)
    if text.startswith("hf:"):
        return _finish(_from_hf(text[3:]), text, strict, require_label)
    path = Path(source)
    if path.is_dir():
        return _finish(_from_hf_disk(path), str(path), strict, require_label)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    if path.suffix == ".parquet":
        return _finish(_from_parquet(path), str(path), strict, require_label)
    return _finish(_from_jsonl(path), str(path), strict, require_label)


def write_samples(samples: Iterable[Sample], path: str | Path) -> Path:
    """Write samples as this project's JSONL (image paths relative to the file), atomically: a reader
    never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for sample in samples:
            handle.write(json.dumps(sample.to_json(path.parent), ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------- formats
Row = tuple[str, Mapping[str, Any], Path | None]  # (where, row, base directory for relative images)


def _from_jsonl(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{where}: not valid JSON ({exc})") from None
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, row, path.parent


def _from_parquet(path: Path) -> Iterator[Row]:
    require("train", "pandas", "pyarrow")
    import pandas as pd

    frame = pd.read_parquet(path)
    for column in ("question", "mid_path"):
        if column not in frame.columns:
            raise DataError(f"{path}: missing column {column!r} (CARES format: question, mid_path, hard)")
    for index, row in enumerate(frame.to_dict(orient="records")):
        data = {"id": row.get("id", str(index)), "image": row["mid_path"], "question": row["question"]}
        if "hard" in row and row["hard"] is not None:
            data["label"] = row["hard"]
        if "answers" in row:
            data["answers"] = row["answers"]
        yield f"{path}: row {index}", data, path.parent


def _from_hf(spec: str) -> Iterator[Row]:
    require("train", "datasets")
    import datasets

    name, _, split = spec.partition(":")
    yield from _rows(datasets.load_dataset(name, split=split or "train"), f"hf:{spec}")


def _from_hf_disk(path: Path) -> Iterator[Row]:
    require("train", "datasets")
    import datasets

    data = datasets.load_from_disk(str(path))
    if isinstance(data, datasets.DatasetDict):
        if "train" not in data and len(data) != 1:
            raise DataError(f"{path}: a DatasetDict with splits {list(data)}: save one split")
        data = data["train"] if "train" in data else next(iter(data.values()))
    yield from _rows(data, str(path))


def _rows(dataset: Any, where: str) -> Iterator[Row]:
    for index, row in enumerate(dataset):
        yield f"{where}: row {index}", {"id": str(index), **row}, None


# ---------------------------------------------------------------- validation
def _finish(rows: Iterable[Row], source: str, strict: bool, require_label: bool) -> LoadedSamples:
    loaded, seen = LoadedSamples([]), set()
    for where, row, base in rows:
        sample = _sample(where, row, base, require_label)
        if sample.id in seen:
            raise DataError(f"{where}: field 'id': duplicate id {sample.id!r}")
        seen.add(sample.id)
        if isinstance(sample.image, Path) and not sample.image.is_file():
            if strict:
                raise DataError(f"{where}: field 'image': no such file {sample.image}")
            loaded.missing.append(f"{where}: {sample.image}")
            continue
        loaded.samples.append(sample)
    if not loaded.samples:
        raise DataError(
            f"{source}: no usable samples" + (f" ({len(loaded.missing)} images missing)" if loaded.missing else "")
        )
    return loaded


def _sample(where: str, row: Mapping[str, Any], base: Path | None, require_label: bool) -> Sample:
    def field_error(name: str, problem: str) -> DataError:
        return DataError(f"{where}: field {name!r}: {problem}")

    for name in ("id", "image", "question"):
        if row.get(name) is None or row.get(name) == "":
            raise field_error(name, "missing")
    question = row["question"]
    if not isinstance(question, str):
        raise field_error("question", f"expected a string, got {type(question).__name__}")
    answers = row.get("answers", [])
    if isinstance(answers, str):
        answers = [answers]
    elif hasattr(answers, "tolist"):  # numpy arrays from parquet
        answers = answers.tolist()
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise field_error("answers", "expected a list of strings")
    label = row.get("label")
    if label is not None:
        if not _is_index(label):
            raise field_error("label", f"expected a class index (int), got {label!r}")
        label = int(label)
        if label < 0:
            raise field_error("label", f"expected a class index >= 0, got {label}")
    elif require_label:
        raise field_error("label", "missing (train needs labeled data: run `resgate label` first)")
    image = row["image"]
    if isinstance(image, dict) and image.get("path"):  # datasets' Image feature without decoding
        image = image["path"]
    if isinstance(image, str):
        image = Path(image) if base is None or Path(image).is_absolute() else base / image
    elif not hasattr(image, "size"):
        raise field_error("image", f"expected a path or an image, got {type(image).__name__}")
    known = {"id", "image", "question", "answers", "label"}
    meta = {k: v for k, v in row.items() if k not in known and k not in ("mid_path", "hard")}
    return Sample(str(row["id"]), image, question, list(answers), label, meta)


def _is_index(value: Any) -> bool:
    """An int, or an integral numpy/float value from parquet; not a bool or a string."""
    if isinstance(value, (bool, str)):
        return False
    try:
        return float(value) == int(value)
    except (TypeError, ValueError):
        return False
