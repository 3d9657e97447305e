"""``--engine ray`` on a real local Ray instance (started by each ``resgate`` process, bound to
loopback): the same labels as the local engine, resume after a kill, and the feature extraction of
``resgate train``. Each run is a real ``resgate`` process, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from resgate_router.cli import main
from tests.processes import kill_mid_run

LADDER = ["--ladder", "384,512,768"]
SAMPLES = 40


def run(*args: str, timeout: float = 600) -> str:
    """Run ``resgate ARGS`` in a process of its own; its output."""
    done = subprocess.run(
        [sys.executable, "-m", "resgate_router.cli", *args], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def resgate(*args: str) -> dict:
    """``resgate label``'s printed JSON summary."""
    return json.loads(run(*args).strip().splitlines()[-1])


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from resgate_router.tools.synthetic import generate_documents

    qa = generate_documents(tmp_path_factory.mktemp("docs"), n=13, seed=5, kinds=("invoice", "receipt", "form"))
    assert len(qa.read_text().splitlines()) >= SAMPLES
    return qa


def label_args(data: Path, out: Path, *extra: str) -> list[str]:
    common = ["--adapter", "ocr", "--metric", "contains", "--limit", str(SAMPLES), "--no-progress"]
    return ["label", "--data", str(data), *common, *LADDER, "--out", str(out), *extra]


@pytest.fixture(scope="module")
def local_labels(documents: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "labels.jsonl"
    resgate(*label_args(documents, out))
    return out


def test_ray_labels_are_byte_identical_to_the_local_engines(documents: Path, local_labels: Path, tmp_path: Path):
    out = tmp_path / "labels.jsonl"
    summary = resgate(*label_args(documents, out, "--engine", "ray", "--ray-actors", "2"))
    assert summary["labeled"] == SAMPLES and summary["failures"] == 0
    assert summary["downstream_calls"] == 3 * SAMPLES
    assert out.read_bytes() == local_labels.read_bytes()


def test_a_killed_ray_run_resumes_without_redoing_finished_work(documents: Path, local_labels: Path, tmp_path: Path):
    total = 3 * SAMPLES
    out = tmp_path / "labels.jsonl"
    runs = Path(str(out) + ".runs.jsonl")
    args = label_args(documents, out, "--engine", "ray", "--ray-actors", "1")
    finished = kill_mid_run(args, runs, after=12, timeout=300)
    assert 12 <= finished < total, f"the kill should land mid-run ({finished} of {total} finished)"
    assert not out.exists()
    summary = resgate(*args)
    assert summary["downstream_calls"] == total - finished  # nothing stored was redone
    keys = [(r["id"], r["resolution"]) for r in map(json.loads, runs.read_text().splitlines())]
    assert len(keys) == len(set(keys)) == total
    assert out.read_bytes() == local_labels.read_bytes()


def test_bench_on_ray_reports_what_the_local_engine_does(documents: Path, tmp_path: Path):
    gates = "fixed:384,fixed:768,native,oracle"
    bench = ["bench", "--data", str(documents), "--adapter", "ocr", "--metric", "contains", *LADDER, "--limit", "12"]
    bench += ["--gates", gates, "--no-progress"]
    run(*bench, "--out", str(tmp_path / "local"))
    run(*bench, "--out", str(tmp_path / "ray"), "--engine", "ray", "--ray-actors", "2")
    local, remote = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("local", "ray"))
    assert remote["downstream_calls"] == local["downstream_calls"] == 12 * 4  # three rungs and native
    for name in gates.split(","):
        for key in ("score", "visual_tokens", "saved_vs_native", "class_mix"):
            assert remote["gates"][name][key] == local["gates"][name][key], (name, key)


def test_an_in_process_engine_runs_in_the_actors_in_batches(documents: Path, tiny_backbone: Path, tmp_path: Path):
    """``--adapter hf:DIR`` (no GPU here: CPU actors): each actor loads the model; a page's questions
    at one rung go to one engine call (the local engine's batching); every rung is rendered as the
    local engine renders it (same visual tokens, same sizes sent)."""
    args = ["label", "--data", str(documents), "--adapter", f"hf:{tiny_backbone}", "--metric", "contains"]
    args += [*LADDER, "--limit", "12", "--max-tokens", "2", "--batch-size", "8", "--no-progress"]
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    resgate(*args, "--out", str(local))
    summary = resgate(*args, "--out", str(remote), "--engine", "ray", "--ray-actors", "2")
    assert summary["labeled"] == 12 and summary["failures"] == 0

    def runs(path: Path) -> dict:
        rows = map(json.loads, Path(f"{path}.runs.jsonl").read_text().splitlines())
        return {(r["id"], r["resolution"]): r for r in rows}

    here, there = runs(local), runs(remote)
    assert here.keys() == there.keys() and len(there) == 12 * 3
    for key, run in there.items():
        assert (run["visual_tokens"], run["sent"]) == (here[key]["visual_tokens"], here[key]["sent"]), key
        assert isinstance(run["answer"], str) and run["batch_size"] >= 1
    assert max(run["batch_size"] for run in there.values()) > 1  # batched engine calls in the actors


def test_train_extracts_the_same_features_on_ray(local_labels: Path, tiny_backbone: Path, tmp_path: Path):
    """``resgate train --engine ray``: the backbone runs in the actors; the cached features match a
    local extraction (float32 on the CPU; batches may be composed differently, hence the tolerance)."""
    from resgate_router.gate import SmolVLMGate
    from resgate_router.tools.datasets import load_samples
    from resgate_router.tools.training.features import extract_features

    train = ["train", "--data", str(local_labels), "--backbone", str(tiny_backbone), "--ladder", "384,512,768"]
    common = ["--epochs", "1", "--device", "cpu", "--dtype", "float32", "--extract-batch-size", "4"]
    out = tmp_path / "gate"
    printed = run(*train, *common, "--out", str(out), "--cache-dir", str(tmp_path / "ray-cache"), "--engine", "ray")
    assert f"0 cached, {SAMPLES} extracted" in printed
    gate = SmolVLMGate.from_backbone(tiny_backbone, ladder="384,512,768", device="cpu", dtype=torch.float32)
    samples = load_samples(local_labels).samples
    remote = extract_features(gate, samples, cache_dir=tmp_path / "ray-cache", progress=False)
    assert remote.hits == SAMPLES and remote.extracted == 0  # all found in the cache the Ray run wrote
    local = extract_features(gate, samples, use_cache=False, progress=False)
    assert torch.allclose(remote.features, local.features, atol=1e-5)


def test_ray_flags_are_checked(local_labels: Path, tmp_path: Path, capsys):
    base = ["label", "--data", str(local_labels), "--adapter", "ocr", "--out", str(tmp_path / "x.jsonl")]
    assert main([*base, "--ray-actors", "2"]) == 2
    assert "--ray-actors needs --engine ray" in capsys.readouterr().err
    assert main([*base, "--engine", "ray", "--ray-actors", "0"]) == 2
    assert "--ray-actors must be >= 1" in capsys.readouterr().err
    train = ["train", "--data", str(local_labels), "--gate", "docs", "--out", str(tmp_path / "g"), "--engine", "ray"]
    assert main(train) == 2
    assert "--gate docs has none" in capsys.readouterr().err
