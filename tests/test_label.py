"""``resgate label``: the CARES rule, end to end with the real offline OCR reader, and resume after a kill."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from resgate_router.cli import main
from resgate_router.tools.labeling import assign_label
from tests.processes import kill_mid_run


@pytest.mark.parametrize(
    ("scores", "tau", "delta", "label"),
    [
        ([0.9, 0.95, 1.0], 0.85, 0.1, 0),  # cheapest rung already answers, nothing gains > delta above it
        ([0.86, 1.0, 1.0], 0.85, 0.1, 1),  # 384 passes tau but 512 is 0.14 better: delta moves it up
        ([0.86, 1.0, 1.0], 0.85, None, 0),  # the reference code's rule (tau only)
        ([0.0, 0.5, 0.9], 0.85, 0.1, 2),
        ([0.0, 0.0, 0.0], 0.85, 0.1, 2),  # nothing answers: the top class
        ([0.9, 0.0, 0.0], 0.85, 0.1, 0),  # higher rungs worse: still the cheapest
        ([0.5, 0.9, 0.2, 1.0], 0.85, 0.1, 1),  # 0.9 -> 1.0 is within delta
        ([0.5, 0.86, 0.2, 1.0], 0.85, 0.1, 3),
    ],
)
def test_cares_rule(scores: list[float], tau: float, delta: float | None, label: int) -> None:
    assert assign_label(scores, tau, delta) == label


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from resgate_router.tools.synthetic import generate_documents

    return generate_documents(tmp_path_factory.mktemp("docs"), n=3, seed=3, kinds=("invoice", "receipt", "form"))


LADDER = ["--ladder", "384,768,1024"]


def _label(data: Path, out: Path, *extra: str) -> int:
    return main(
        ["label", "--data", str(data), "--adapter", "ocr", "--metric", "contains", "--out", str(out), "--no-progress"]
        + list(extra)
    )


@pytest.fixture(scope="module")
def clean_run(documents: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One uninterrupted labeling run: (labels file, printed summary)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("clean") / "labels.jsonl"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert _label(documents, out, *LADDER) == 0
    return out, json.loads(printed.getvalue().strip().splitlines()[-1])


def test_label_with_the_ocr_reader_then_rerun_is_free(documents: Path, clean_run, capsys) -> None:
    out, first = clean_run
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    items = [json.loads(line) for line in documents.read_text().splitlines()]
    assert [r["id"] for r in rows] == [i["id"] for i in items] and first["labeled"] == len(items)
    assert first["downstream_calls"] == 3 * len(items)
    for row in rows:
        runs = row["runs"]
        assert list(runs) == ["384", "768", "1024"]
        scores = [runs[k]["score"] for k in runs]
        assert row["label"] == assign_label(scores, 0.85, 0.1)
        assert runs["384"]["visual_tokens"] < runs["768"]["visual_tokens"] <= runs["1024"]["visual_tokens"]
    # the text sizes of the generated pages give more than one class
    assert len({r["label"] for r in rows}) >= 2
    # big answers are labeled cheaper than small ones on average
    by_px = sorted(rows, key=lambda r: r["text_px"])
    half = len(by_px) // 2
    assert sum(r["label"] for r in by_px[:half]) >= sum(r["label"] for r in by_px[half:])
    # a rerun finds every (sample, resolution) finished: no downstream call, identical labels file
    before = out.read_bytes()
    assert _label(documents, out, *LADDER) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["downstream_calls"] == 0 and out.read_bytes() == before
    # the labels file is training data: loads with labels required
    from resgate_router.tools.datasets import load_samples

    assert len(load_samples(out, require_label=True)) == len(items)


def test_killed_label_run_resumes_without_redoing_finished_work(documents: Path, clean_run, tmp_path: Path) -> None:
    """A real SIGKILL mid-run; the rerun does only what was missing and writes the same labels as an
    uninterrupted run."""
    items = len(documents.read_text().splitlines())
    total = 3 * items
    args = ["--data", str(documents), "--adapter", "ocr", "--metric", "contains", *LADDER]
    out = tmp_path / "killed" / "labels.jsonl"
    runs = Path(str(out) + ".runs.jsonl")
    label = ["label", *args, "--out", str(out), "--no-progress"]
    finished = kill_mid_run(label, runs, after=3)
    assert 3 <= finished < total, f"the kill should land mid-run ({finished} of {total} finished)"
    assert not out.exists()  # the labels file is written only at the end, never half

    done = subprocess.run(
        [sys.executable, "-m", "resgate_router.cli", *label], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["downstream_calls"] == total - finished  # nothing finished was redone
    keys = [(r["id"], r["resolution"]) for r in map(json.loads, runs.read_text().splitlines())]
    assert len(keys) == len(set(keys)) == total  # one record per (sample, resolution), no duplicates

    assert out.read_bytes() == clean_run[0].read_bytes()  # the same labels as an uninterrupted run


def test_label_errors_are_clear(documents: Path, tmp_path: Path, capsys) -> None:
    assert _label(documents, tmp_path / "x.jsonl", "--ladder", "384,banana") == 2
    assert "invalid ladder rung 'banana'" in capsys.readouterr().err
    assert main(["label", "--data", str(tmp_path / "none.jsonl"), "--adapter", "ocr", "--out", "x"]) == 2
    assert "no such data file" in capsys.readouterr().err
    assert _label(documents, tmp_path / "x.jsonl", "--adapter", "nope") == 2
    assert "no adapter named 'nope'" in capsys.readouterr().err


def test_label_a_hugging_face_dataset_saves_its_images(tmp_path: Path) -> None:
    """Decoded images (datasets' Image feature) get files next to the labels, so the labels file is
    training data like any other."""
    import datasets

    from resgate_router.testing import make_document_image
    from resgate_router.tools.datasets import load_samples

    features = datasets.Features(
        {"image": datasets.Image(), "question": datasets.Value("string"), "answers": [datasets.Value("string")]}
    )
    page = make_document_image(600, 800)
    data = datasets.Dataset.from_dict(
        {"image": [page, page], "question": ["What is the total?", "Who signed?"], "answers": [["x"], ["y"]]},
        features=features,
    )
    data.save_to_disk(str(tmp_path / "ds"))
    out = tmp_path / "labels.jsonl"
    assert _label(tmp_path / "ds", out, "--ladder", "384,512") == 0
    samples = load_samples(out, require_label=True).samples
    assert [s.id for s in samples] == ["0", "1"] and all(s.image.is_file() for s in samples)
    assert samples[0].image.parent.name == "labels.jsonl.images"


def test_label_then_train_then_route_and_bench_with_the_new_gate(
    documents: Path, clean_run, tiny_backbone: Path, tmp_path: Path, capsys
) -> None:
    """Issue 6 end to end: labels from the real OCR reader -> a head trained on the tiny backbone ->
    the gate reloads, predicts on the ladder it was labeled on, and benchmarks like any other gate."""
    from resgate_router.gate import SmolVLMGate
    from resgate_router.gate.loading import load_gate

    labels, _ = clean_run
    gate_dir = tmp_path / "gate"
    args = ["train", "--data", str(labels), "--backbone", str(tiny_backbone), "--out", str(gate_dir)]
    args += [*LADDER, "--epochs", "2", "--val-frac", "0.3", "--cache-dir", str(tmp_path / "features")]
    assert main(args) == 0
    metrics = json.loads((gate_dir / "metrics.json").read_text())
    assert metrics["split"]["train"] + metrics["split"]["val"] == len(labels.read_text().splitlines())
    assert metrics["class_counts"]["all"] == [
        sum(json.loads(line)["label"] == k for line in labels.read_text().splitlines()) for k in range(3)
    ]
    gate = load_gate(gate_dir)
    assert isinstance(gate, SmolVLMGate) and gate.ladder.to_list() == [384, 768, 1024]
    first = json.loads(labels.read_text().splitlines()[0])
    decision = gate.predict(str(labels.parent / first["image"]), first["question"])
    assert decision.resolution in (384, 768, 1024) and abs(sum(decision.probabilities) - 1) < 1e-5
    out = tmp_path / "bench"
    bench = ["bench", "--data", str(documents), "--adapter", "ocr", "--metric", "contains", *LADDER]
    bench += ["--gates", f"fixed:384,oracle,{gate_dir}", "--out", str(out), "--no-progress"]
    assert main(bench) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["gates"][str(gate_dir)]["per_class_accuracy"]) == {"384", "768", "1024"}


def test_sweep_joins_content_parts_and_retries_answers_without_a_message(documents: Path, tmp_path: Path) -> None:
    from resgate_router.adapters import CallableAdapter

    from resgate_router.policies import get_policy
    from resgate_router.tools.datasets import load_samples
    from resgate_router.tools.sweep import RunStore, Sweep

    samples = load_samples(documents).samples[:2]
    parts = {"choices": [{"message": {"content": [{"type": "text", "text": "to"}, {"type": "text", "text": "tal"}]}}]}
    answers = iter([parts, {"choices": []}, parts, parts])  # a user's engine, one answer per call
    sweep = Sweep(
        [CallableAdapter(lambda request, kwargs: next(answers))],
        RunStore(tmp_path / "runs.jsonl"),
        model="m",
        policy=get_policy("idefics3"),
        progress=False,
    )
    sweep.run(samples, [384, 768])
    stored = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert [r["answer"] for r in stored] == ["total"] * 3
    assert len(sweep.failures) == 1 and "UpstreamProtocolError" in sweep.failures[0]["error"]
