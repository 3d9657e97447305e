"""``resgate bench``: the oracle, cached answers (a new gate costs no downstream call), resume after a
kill, round-robin over upstreams, and the outputs (results.json, results.md, pareto.png)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resgate_router.cli import main
from resgate_router.ladder import Ladder
from resgate_router.tools.bench.gates import oracle_choices
from resgate_router.tools.bench.run import bootstrap_ci
from tests.processes import kill_mid_run


def test_oracle_on_a_hand_made_table() -> None:
    ladder = Ladder.parse("384,512,768,full")
    scores = [
        [0.0, 1.0, 1.0, 1.0],  # first good rung is 512
        [1.0, 1.0, 1.0, 1.0],  # 384 and 512 cost the same: the lower rung
        [0.0, 0.0, 0.0, 0.0],  # nothing reads: every rung is "as good as the best", the cheapest wins
        [0.5, 0.9, 0.9, 1.0],  # only full reaches the best score
        [1.0, 0.0, 1.0, 0.0],  # non-monotone scores: the cheapest of the best
        [0.0, 1.0, 1.0, 1.0],
    ]
    tokens = [[64, 64, 266, 898]] * 5 + [[300, 200, 100, 898]]  # last row: a higher rung that costs less
    assert oracle_choices(ladder, scores, tokens) == [1, 0, 0, 3, 0, 2]


def test_bootstrap_interval() -> None:
    values = [1.0] * 70 + [0.0] * 30
    low, high = bootstrap_ci(values)
    assert low < 0.7 < high and high - low < 0.25
    wide = bootstrap_ci(values[::10])  # ten items: a much wider interval
    assert wide[1] - wide[0] > high - low
    assert bootstrap_ci([0.5] * 5) == (0.5, 0.5)


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from resgate_router.tools.synthetic import generate_documents

    return generate_documents(tmp_path_factory.mktemp("docs"), n=2, seed=5, kinds=("receipt", "form"))


ARGS = ["--adapter", "ocr", "--metric", "contains", "--ladder", "384,768,1024", "--extra-metric", "anls-lines"]
GATES = "fixed:384,fixed:768,fixed:1024,native,oracle"


@pytest.fixture(scope="module")
def resumed(documents: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """A bench run killed (SIGKILL) mid-sweep, then rerun to the end: (out dir, finished before, calls after)."""
    out = tmp_path_factory.mktemp("bench")
    args = ["bench", "--data", str(documents), *ARGS, "--gates", GATES, "--out", str(out), "--concurrency", "2"]
    finished = kill_mid_run([*args, "--no-progress"], out / "answers.jsonl", after=2)
    assert main(["bench", "--data", str(documents), *ARGS, "--gates", GATES, "--out", str(out), "--no-progress"]) == 0
    return out, finished, json.loads((out / "results.json").read_text())["downstream_calls"]


def test_a_killed_bench_resumes_where_it_stopped(documents: Path, resumed) -> None:
    out, finished, calls = resumed
    items = len(documents.read_text().splitlines())
    total = 4 * items  # 384, 768, 1024 and full per item
    assert 2 <= finished < total, f"the kill should land mid-sweep ({finished} of {total})"
    assert calls == total - finished
    keys = [(r["id"], r["resolution"]) for r in map(json.loads, (out / "answers.jsonl").read_text().splitlines())]
    assert len(keys) == len(set(keys)) == total


def test_results_files_and_fields(documents: Path, resumed) -> None:
    out = resumed[0]
    results = json.loads((out / "results.json").read_text())
    for key in ("git_sha", "device", "versions", "command", "date", "items", "gates"):
        assert key in results
    assert results["command"].startswith("resgate bench --data")
    assert "not a VLM" in results["downstream"]
    gates = results["gates"]
    assert list(gates) == GATES.split(",")
    for gate in gates.values():
        assert 0.0 <= gate["score"] <= 1.0 and gate["score_ci95"][0] <= gate["score"] <= gate["score_ci95"][1]
        assert set(gate["scores_by_metric"]) == {"contains", "anls-lines"}
        assert gate["visual_tokens"] > 0 and gate["latency_ms_median"] > 0
    assert gates["native"]["saved_vs_native"] == 0.0
    assert gates["fixed:384"]["visual_tokens"] < gates["fixed:768"]["visual_tokens"] < gates["native"]["visual_tokens"]
    # the oracle is the upper bound of any ladder gate, at no more cost than the best fixed rung
    best_fixed = max(gates[g]["score"] for g in ("fixed:384", "fixed:768", "fixed:1024"))
    assert gates["oracle"]["score"] >= best_fixed
    assert gates["oracle"]["visual_tokens"] <= gates["fixed:1024"]["visual_tokens"]
    assert sum(gates["oracle"]["class_mix"].values()) == pytest.approx(1.0, abs=1e-3)
    table = (out / "results.md").read_text()
    assert "| oracle |" in table and "anls-lines" in table
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_new_gate_costs_no_downstream_call(documents: Path, resumed, capsys) -> None:
    out = resumed[0]
    gates = GATES + ",legibility"
    assert main(["bench", "--data", str(documents), *ARGS, "--gates", gates, "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["downstream_calls"] == 0
    legibility = results["gates"]["legibility"]
    assert legibility["gate_ms_median"] > 0 and 0.0 <= legibility["oracle_agreement"] <= 1.0
    assert set(legibility["per_class_accuracy"]) == {"384", "768", "1024"}
    assert legibility["saved_from"] == "latency_ms"  # the OCR reader does not stream: whole calls
    saved, ratio = legibility["downstream_ms_saved"], legibility["gate_cost_ratio"]
    assert ratio is None if saved <= 0 else ratio > 0
    assert "gate ms / ms saved" in capsys.readouterr().out


def test_the_gate_cost_ratio_pairs_each_item_with_native() -> None:
    from resgate_router.tools.bench.run import _gate_cost_ratio

    runs = [
        {"full": {"latency_ms": 100.0, "ttft_ms": 40.0}, "512": {"latency_ms": 60.0, "ttft_ms": 10.0}},
        {"full": {"latency_ms": 90.0, "ttft_ms": 50.0}, "512": {"latency_ms": 70.0, "ttft_ms": 20.0}},
    ]
    # TTFT when every pair has it: (40 - 10 + 50 - 50) / 2 = 15 ms saved; the gate's mean 3 ms
    assert _gate_cost_ratio(runs, ["512", "full"], "full", [2.0, 4.0]) == {
        "downstream_ms_saved": 15.0,
        "saved_from": "ttft_ms",
        "gate_cost_ratio": 0.2,
    }
    del runs[1]["512"]["ttft_ms"]
    runs[0]["512"]["cached"] = True  # a memo answered it: no downstream time to compare
    assert _gate_cost_ratio(runs, ["512", "512"], "full", [3.0]) == {
        "downstream_ms_saved": 20.0,
        "saved_from": "latency_ms",
        "gate_cost_ratio": 0.15,
    }
    assert _gate_cost_ratio(runs, ["full", "full"], "full", [3.0])["gate_cost_ratio"] is None  # nothing saved


def test_both_learned_gate_kinds_compare_in_one_run(documents: Path, resumed, tiny_gate_dir, tmp_path) -> None:
    from resgate_router.testing import build_tiny_granite_gate

    out = resumed[0]
    granite = build_tiny_granite_gate(tmp_path / "granite-gate")
    gates = f"native,{tiny_gate_dir},{granite}"
    assert main(["bench", "--data", str(documents), *ARGS, "--gates", gates, "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["downstream_calls"] == 0  # both gates' rungs were answered already
    for name in (str(tiny_gate_dir), str(granite)):
        gate = results["gates"][name]
        assert gate["gate_ms_median"] > 0 and gate["visual_tokens"] > 0
        assert sum(gate["class_mix"].values()) == pytest.approx(1.0, abs=1e-3)


def test_round_robin_over_upstreams_with_concurrency(documents: Path, tmp_path: Path) -> None:
    """Two real loopback HTTP upstreams (OpenAI-compatible): the runs are spread evenly over them."""
    from tests.upstreams import FaultServer

    first, second = FaultServer(), FaultServer()
    try:
        urls = f"{first.url('ok')},{second.url('ok')}"
        code = main(
            ["bench", "--data", str(documents), "--adapter", f"openai:{urls}", "--gates", "fixed:384,native",
             "--ladder", "384,full", "--concurrency", "4", "--out", str(tmp_path), "--no-progress", "--metric", "exact"]
        )  # fmt: skip
        assert code == 0
        items = len(documents.read_text().splitlines())
        assert first.calls["ok"] + second.calls["ok"] == 2 * items
        assert abs(first.calls["ok"] - second.calls["ok"]) <= 1
        results = json.loads((tmp_path / "results.json").read_text())
        assert results["cache_key"].startswith("openai")
    finally:
        first.stop()
        second.stop()


def test_bench_errors_are_clear(documents: Path, tmp_path: Path, capsys) -> None:
    base = ["bench", "--data", str(documents), "--adapter", "ocr", "--out", str(tmp_path), "--no-progress"]
    assert main([*base, "--gates", "fixed:abc"]) == 2
    assert "use fixed:N" in capsys.readouterr().err
    assert main([*base, "--gates", str(tmp_path / "no-such-gate")]) == 2
    assert main([*base, "--ladder", "512,384"]) == 2
    assert "increase strictly" in capsys.readouterr().err


def test_bench_through_a_real_vllm_server_streams_ttft(documents: Path, vllm_server: str, tmp_path: Path) -> None:
    """The OpenAI adapter against the session's real vLLM server (tiny model): answers stream, TTFT is
    measured, and the prompt tokens vLLM counts follow the rung."""
    args = ["bench", "--data", str(documents), "--adapter", f"openai:{vllm_server}", "--served-model", "tiny-smolvlm"]
    args += ["--gates", "fixed:384,native", "--ladder", "384,full", "--max-tokens", "4", "--concurrency", "2"]
    assert main([*args, "--stream", "--limit", "2", "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    gates = json.loads((tmp_path / "s" / "results.json").read_text())["gates"]
    assert gates["fixed:384"]["ttft_ms_median"] > 0 and gates["native"]["ttft_ms_median"] > 0
    assert main([*args, "--limit", "2", "--out", str(tmp_path / "p"), "--no-progress"]) == 0
    runs = [json.loads(line) for line in (tmp_path / "p" / "answers.jsonl").read_text().splitlines()]
    tokens = {(r["id"], r["resolution"]): r["prompt_tokens"] for r in runs}
    for sample_id in {r["id"] for r in runs}:
        assert tokens[(sample_id, "384")] < tokens[(sample_id, "full")]
