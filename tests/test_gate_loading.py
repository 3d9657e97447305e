"""``load_gate``: one loader for every gate kind, used by the router's servers and the CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from resgate_router import ConfigError
from resgate_router.cli import main
from resgate_router.gate import LegibilityGate, SmolVLMGate, load_gate
from resgate_router.gate.loading import gate_type
from resgate_router.testing import make_document_image


def test_options_a_kind_does_not_take_are_config_errors_and_none_means_unset(tmp_path: Path) -> None:
    from resgate_router.testing import build_tiny_granite_gate

    granite = build_tiny_granite_gate(tmp_path / "granite")
    assert load_gate(granite, device=None, dtype=None, profile=None).ladder.to_list() == [384, 512, "full"]
    with pytest.raises(ConfigError, match=r"a Granite LoRA gate does not take the option\(s\) 'profile'"):
        load_gate(granite, profile="cares")


def test_dispatch_by_the_directory_config(tiny_gate_dir: Path, tmp_path: Path) -> None:
    assert gate_type(tiny_gate_dir) == "smolvlm-mlp"  # what save_pretrained writes
    assert isinstance(load_gate(tiny_gate_dir), SmolVLMGate)
    assert load_gate(tiny_gate_dir, ladder="cares").ladder.to_list() == [384, 768, 1024]
    legibility = load_gate("legibility", ladder="384,768,full")
    assert isinstance(legibility, LegibilityGate) and legibility.ladder.to_list() == [384, 768, "full"]
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "config.json").write_text(json.dumps({"gate_type": "mlp"}))
    (tmp_path / "plain").mkdir()  # a reference CARES checkpoint's directory says nothing
    assert gate_type(tmp_path / "legacy") == gate_type(tmp_path / "plain") == "smolvlm-mlp"
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text(json.dumps({"gate_type": "quantum"}))
    with pytest.raises(ConfigError, match="unknown gate_type 'quantum'"):
        load_gate(tmp_path / "odd")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{nope")
    with pytest.raises(ConfigError, match="not a readable JSON gate config"):
        load_gate(tmp_path / "broken")


def test_servers_and_route_take_any_gate_kind(tmp_path: Path, capsys) -> None:
    from resgate_router.server.routing import build_router
    from resgate_router.server.settings import GateSettings

    router = build_router(GateSettings(gate="legibility", ladder="384,512,full"))
    assert isinstance(router.gate, LegibilityGate) and router.gate.policy is router.policy  # equal-cost tie-break
    page = make_document_image(1700, 2200)
    parts = [{"type": "image", "image": page}, {"type": "text", "text": "What is the total?"}]
    routed = asyncio.run(router.route({"messages": [{"role": "user", "content": parts}]}))
    assert routed.record.status == "routed" and routed.record.images[0].source == "gate"
    page.save(tmp_path / "page.png")
    assert main(["route", "--gate", "legibility", "--image", str(tmp_path / "page.png"), "--question", "Total?"]) == 0
    assert "LegibilityGate" in capsys.readouterr().out


def test_the_compile_setting_reaches_a_smolvlm_gate_only(tiny_gate_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """``RESGATE_GATE_COMPILE=1`` builds the SmolVLM gate with its compiled runner (compiling waits for
    the first call); unset, no kind is passed the option, so every kind still loads."""
    from resgate_router.server.routing import build_router
    from resgate_router.server.settings import GateSettings
    from resgate_router.testing import build_tiny_granite_gate

    monkeypatch.setenv("RESGATE_GATE_COMPILE", "1")
    assert build_router(GateSettings(gate=str(tiny_gate_dir))).gate.runner is not None
    monkeypatch.delenv("RESGATE_GATE_COMPILE")
    assert build_router(GateSettings(gate=str(tiny_gate_dir))).gate.runner is None
    assert build_router(GateSettings(gate=str(build_tiny_granite_gate(tmp_path / "granite")))).gate is not None
    with pytest.raises(ConfigError, match="does not take the option"):
        load_gate(tmp_path / "granite", compile=True)


def test_a_fixed_class_outside_the_ladder_is_a_config_error() -> None:
    from resgate_router.gate import FixedGate
    from resgate_router.server.routing import build_router
    from resgate_router.server.settings import GateSettings

    assert FixedGate(2, "384,512,full").label == 2
    for label in (3, -1, True, "1"):
        with pytest.raises(ConfigError, match=r"is not a class of the ladder \[384, 512, 'full'\] \(0\.\.2\)"):
            FixedGate(label, "384,512,full")
    with pytest.raises(ConfigError, match="fixed class 9"):
        build_router(GateSettings(fixed_class=9))
