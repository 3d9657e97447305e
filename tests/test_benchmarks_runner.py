"""``python -m benchmarks.run_all``: the generated RESULTS.md section is rebuilt in place from the
recorded JSON, once, leaving the hand-written text alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import run_all


def test_render_rebuilds_one_section_from_recorded_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results"
    shutil.copytree(run_all.RESULTS, results)
    monkeypatch.setattr(run_all, "RESULTS", results)
    md = tmp_path / "RESULTS.md"
    md.write_text("# Recorded\n\nhand-written analysis\n")
    run_all.render(md)
    first = md.read_text()
    assert first.startswith("# Recorded\n\nhand-written analysis\n") and first.count(run_all.BEGIN) == 1
    for name in run_all.SUITES:
        assert f"### {name}" in first
    payload = json.loads((results / "train_speed_cpu.json").read_text())
    assert payload["env"]["command"] in first
    (results / "accounting.json").unlink()
    run_all.render(md)  # again: replaced in place, a missing suite says how to record it
    second = md.read_text()
    assert second.count(run_all.BEGIN) == 1 and "python -m benchmarks.run_all --suites accounting" in second
    with pytest.raises(SystemExit, match="unknown suites"):
        run_all.main(type("Args", (), {"suites": "nope", "render_only": True, "results_md": str(md)})())
