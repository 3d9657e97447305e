"""``resgate route``: decisions as text or JSON; bad input gives a one-line error, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from resgate_router.cli import main

from .badimages import corrupt_inputs, encode


def route(gate, image, *extra, question="Total?"):
    return main(["route", "--gate", str(gate), "--image", str(image), "--question", question, *extra])


@pytest.fixture(scope="module")
def page_file(tmp_path_factory, page):
    path = tmp_path_factory.mktemp("img") / "page.png"
    path.write_bytes(encode(page))
    return path


def test_route_json(tiny_gate_dir, page_file, capsys, tiny_gate, page):
    assert route(tiny_gate_dir, page_file, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    expected = tiny_gate.predict(page, "Total?")
    assert report["label"] == expected.label and report["resolution"] == expected.resolution
    assert report["probabilities"] == pytest.approx(list(expected.probabilities), abs=1e-6)
    assert report["gate_ms"] > 0 and report["ladder"] == "card" and report["profile"] == "single-tile"


def test_route_text_with_ladder(tiny_gate_dir, page_file, capsys):
    assert route(tiny_gate_dir, page_file, "--ladder", "cares") == 0
    out = capsys.readouterr().out
    assert "resolution" in out and "gate latency" in out and "probabilities" in out


@pytest.mark.parametrize("case", ["corrupt", "missing-image", "missing-gate", "bad-ladder"])
def test_route_errors_are_one_line(tiny_gate_dir, page_file, tmp_path, capsys, case):
    bad = tmp_path / "bad.png"
    bad.write_bytes(corrupt_inputs()["truncated-png"])
    gate, image, extra = {
        "corrupt": (tiny_gate_dir, bad, []),
        "missing-image": (tiny_gate_dir, tmp_path / "nope.png", []),
        "missing-gate": (tmp_path / "no-gate", page_file, []),
        "bad-ladder": (tiny_gate_dir, page_file, ["--ladder", "512,384"]),
    }[case]
    assert route(gate, image, *extra) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if "error" in line] == [err.splitlines()[-1]]
    assert err.splitlines()[-1].startswith("resgate route: error:")


def test_console_script_runs_without_traceback(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    command = [
        sys.executable,
        "-m",
        "resgate_router.cli",
        "route",
        "--gate",
        str(tmp_path),
        "--image",
        str(bad),
        "--question",
        "x",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "empty" in proc.stderr and "Traceback" not in proc.stderr


def test_route_reports_token_accounting_for_a_family(tiny_gate_dir, page_file, capsys, tiny_backbone, page):
    from resgate_router import get_policy

    assert route(tiny_gate_dir, page_file, "--json", "--family", "idefics3", "--model", str(tiny_backbone)) == 0
    report = json.loads(capsys.readouterr().out)
    policy = get_policy("idefics3", model=tiny_backbone)
    target = report["target"]
    assert report["baseline_tokens"] == policy.visual_tokens(*page.size)
    assert report["routed_tokens"] == policy.visual_tokens(*page.size, target)
    assert report["saved_tokens"] == report["baseline_tokens"] - report["routed_tokens"]
    assert route(tiny_gate_dir, page_file, "--family", "qwen2_vl") == 0
    assert "visual tokens" in capsys.readouterr().out


def test_demo_runs_end_to_end_offline(tmp_path, capsys):
    """The README's main job, small: synthetic pages, legibility gate vs a fixed baseline, OCR reader."""
    root = tmp_path / "demo"
    assert main(["demo", "--dir", str(root), "--docs", "2", "--ladder", "384,768", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| legibility |" in out and "| fixed:768 |" in out and "| oracle |" in out
    assert f"plot:    {root / 'results' / 'pareto.png'}" in out
    results = json.loads((root / "results" / "results.json").read_text())
    assert set(results["gates"]) == {"fixed:768", "legibility", "native", "oracle"}
    assert results["items"] == len((root / "documents" / "qa.jsonl").read_text().splitlines())


def test_demo_shows_the_builtin_gate_on_its_ladder(tmp_path, capsys):
    """On the default ladder the demo runs the shipped learned gate beside the others."""
    root = tmp_path / "demo"
    assert main(["demo", "--dir", str(root), "--docs", "2", "--no-progress"]) == 0
    assert "| builtin:docs |" in capsys.readouterr().out
    results = json.loads((root / "results" / "results.json").read_text())
    assert set(results["gates"]) == {"fixed:768", "builtin:docs", "legibility", "native", "oracle"}
