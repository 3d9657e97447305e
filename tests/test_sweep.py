"""The sweep behind ``resgate label`` and ``resgate bench`` batches in-process engines: the real
transformers engine on the tiny model gives the same answers batched as one at a time, in one engine
call per chunk, and a pair whose image is bad fails alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from resgate_router.adapters.hf_transformers import HFAdapter

from resgate_router.cli import main
from resgate_router.policies import get_policy
from resgate_router.tools.datasets import Sample, load_samples
from resgate_router.tools.sweep import RunStore, Sweep


class CountingEngine:
    """The real HF adapter, its engine calls counted."""

    def __init__(self, adapter: HFAdapter) -> None:
        self.adapter, self.batches = adapter, []

    def complete(self, request, *, processor_kwargs):
        self.batches.append(1)
        return self.adapter.complete(request, processor_kwargs=processor_kwargs)

    def complete_batch(self, requests, processor_kwargs):
        self.batches.append(len(requests))
        return self.adapter.complete_batch(requests, processor_kwargs)


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from resgate_router.tools.synthetic import generate_documents

    return generate_documents(tmp_path_factory.mktemp("docs"), n=3, seed=11, kinds=("invoice", "receipt", "form"))


@pytest.fixture(scope="module")
def engine(tiny_backbone: Path) -> HFAdapter:
    return HFAdapter(tiny_backbone, device="cpu", max_new_tokens=6)


def _sweep(engine: HFAdapter, store: Path, batch_size: int) -> tuple[Sweep, CountingEngine]:
    counting = CountingEngine(engine)
    sweep = Sweep(
        [counting], RunStore(store), model="tiny", policy=get_policy("idefics3"), batch_size=batch_size, progress=False
    )
    return sweep, counting


def _answers(store: Path) -> dict[tuple[str, str], str]:
    return {(r["id"], r["resolution"]): r["answer"] for r in map(json.loads, store.read_text().splitlines())}


def test_batched_sweep_equals_one_at_a_time_in_fewer_engine_calls(documents, engine, tmp_path) -> None:
    samples = load_samples(documents).samples[:3]
    single, single_engine = _sweep(engine, tmp_path / "single.jsonl", 1)
    single.run(samples, [384, 768])
    batched, batched_engine = _sweep(engine, tmp_path / "batched.jsonl", 4)
    batched.run(samples, [384, 768])
    assert single_engine.batches == [1] * 6
    assert batched_engine.batches == [4, 2]  # 3 pages x 2 rungs, rung by rung, 4 per call
    answers = _answers(tmp_path / "batched.jsonl")
    assert answers == _answers(tmp_path / "single.jsonl")
    assert len(set(answers.values())) > 1, answers  # the inputs matter: a mix-up between pairs would show
    runs = [json.loads(line) for line in (tmp_path / "batched.jsonl").read_text().splitlines()]
    assert all(r["batch_ms"] > 0 and r["batch_size"] in (4, 2) and "latency_ms" not in r for r in runs)
    assert all(r["prompt_tokens"] > r["visual_tokens"] > 0 for r in runs)


def test_a_bad_image_fails_alone_and_is_retried_on_rerun(documents, engine, tmp_path) -> None:
    from resgate_router.testing import make_document_image

    samples = load_samples(documents).samples[:3]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    bad = Sample(id="broken", image=broken, question="Total?", answers=["1"])
    sweep, counting = _sweep(engine, tmp_path / "runs.jsonl", 8)
    sweep.run([*samples, bad], [384, 768])
    assert counting.batches == [6] and [f["id"] for f in sweep.failures] == ["broken", "broken"]
    assert all("ImageError" in f["error"] for f in sweep.failures)
    assert set(_answers(tmp_path / "runs.jsonl")) == {(s.id, r) for s in samples for r in ("384", "768")}
    make_document_image(600, 800, seed=2).save(broken)  # repaired: the rerun runs only what failed
    rerun, counting = _sweep(engine, tmp_path / "runs.jsonl", 8)
    rerun.run([*samples, bad], [384, 768])
    assert counting.batches == [2] and not rerun.failures and len(_answers(tmp_path / "runs.jsonl")) == 8


def test_label_batch_size_flag(documents, tiny_backbone, tmp_path, capsys) -> None:
    out = tmp_path / "labels.jsonl"
    args = ["label", "--data", str(documents), "--adapter", f"hf:{tiny_backbone}", "--metric", "contains"]
    assert (
        main([*args, "--ladder", "384,768", "--limit", "3", "--batch-size", "3", "--out", str(out), "--no-progress"])
        == 0
    )
    runs = [json.loads(line) for line in Path(f"{out}.runs.jsonl").read_text().splitlines()]
    assert len(runs) == 6 and {r["batch_size"] for r in runs} == {3}
    assert len(out.read_text().splitlines()) == 3
    assert main([*args, "--batch-size", "0", "--out", str(out), "--no-progress"]) == 2
    assert "batch size must be >= 1" in capsys.readouterr().err
