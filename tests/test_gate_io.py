"""Saving, loading (own format, reference CARES checkpoints, AutoModel) and their typed errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModelForImageTextToText, AutoProcessor

from resgate_router import ConfigError, GateLoadError, SmolVLMGate, load_gate
from resgate_router.testing import build_tiny_smolvlm, make_document_image

from .reference import reference_logits

QUESTION = "What is the date on this receipt?"


def test_save_load_round_trip(tiny_gate, tmp_path, page):
    out = tiny_gate.save_pretrained(tmp_path / "gate")
    assert {p.name for p in out.iterdir()} >= {
        "config.json",
        "head.safetensors",
        "tokenizer.json",
        "processor_config.json",
    }
    config = json.loads((out / "config.json").read_text())
    assert (
        config["model_type"] == "resgate"
        and config["profile"] == "single-tile"
        and config["ladder"] == [384, 512, "full"]
    )
    loaded = SmolVLMGate.from_pretrained(out)
    assert torch.equal(loaded.logits([page], [QUESTION]), tiny_gate.logits([page], [QUESTION]))
    assert loaded.predict(page, QUESTION) == tiny_gate.predict(page, QUESTION)


def test_gate_dir_with_backbone_inside_is_relocatable(tmp_path, tiny_gate_dir, page):
    from resgate_router.testing import build_tiny_gate

    built = build_tiny_gate(tmp_path / "a", seed=4)  # builds its backbone inside the gate dir
    assert json.loads((built / "config.json").read_text())["backbone"] == "backbone"
    moved = shutil.move(str(built), str(tmp_path / "b"))
    assert SmolVLMGate.from_pretrained(moved).predict(page, QUESTION).label in (0, 1, 2)


def test_ladder_and_profile_overrides(tiny_gate_dir, page):
    gate = SmolVLMGate.from_pretrained(tiny_gate_dir, ladder="cares", profile="cares")
    decision = gate.predict(page, QUESTION)
    assert gate.profile == "cares" and decision.resolution in (384, 768, 1024)
    with pytest.raises(ConfigError, match="rungs"):
        SmolVLMGate.from_pretrained(tiny_gate_dir, ladder="384,full")
    with pytest.raises(ConfigError):
        SmolVLMGate.from_pretrained(tiny_gate_dir, layer=1)


def _reference_checkpoint(tmp_path, seed, fmt):
    """A CARES-format checkpoint whose backbone weights differ from the base directory's."""
    base = build_tiny_smolvlm(tmp_path / "trained-backbone", seed=seed)
    model = AutoModelForImageTextToText.from_pretrained(base)
    torch.manual_seed(seed)
    head = torch.nn.Sequential(
        torch.nn.LayerNorm(64), torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 3)
    )
    state = {f"backbone.{k}": v.clone() for k, v in model.state_dict().items()}
    state.update({f"head.{k}": v.clone() for k, v in head.state_dict().items()})
    ckpt = tmp_path / "cares-gate"
    ckpt.mkdir()
    if fmt == "bin":
        torch.save(state, ckpt / "pytorch_model.bin")
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(ckpt / "model.safetensors"))
    return ckpt, base, model, head


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_reference_checkpoint_loads_and_matches(tmp_path, tiny_backbone, fmt):
    ckpt, trained_base, model, head = _reference_checkpoint(tmp_path, seed=21, fmt=fmt)
    gate = SmolVLMGate.from_pretrained(ckpt, backbone=tiny_backbone)  # config + processor from tiny_backbone
    # CARES's labels were 384 / 768 / 1024 px, so its checkpoint means that ladder, not the card's
    assert gate.profile == "cares" and gate.ladder.spec() == "cares" and gate.ladder.to_list() == [384, 768, 1024]
    assert load_gate(ckpt, backbone=tiny_backbone).ladder.spec() == "cares"  # every loader agrees
    assert SmolVLMGate.from_pretrained(ckpt, backbone=tiny_backbone, ladder="card").ladder.spec() == "card"
    image = make_document_image(700, 900, lines=12, seed=8)
    head_state = {f"head.{k}": v for k, v in head.state_dict().items()}
    expected = reference_logits(
        model.eval(), AutoProcessor.from_pretrained(trained_base), head_state, image, QUESTION, profile="cares"
    )
    assert (gate.logits([image], [QUESTION]) - expected).abs().max().item() <= 1e-4
    # the checkpoint's backbone weights were used, not the base directory's
    base_model = AutoModelForImageTextToText.from_pretrained(tiny_backbone).eval()
    other = reference_logits(
        base_model, AutoProcessor.from_pretrained(tiny_backbone), head_state, image, QUESTION, profile="cares"
    )
    assert (other - expected).abs().max().item() > 1e-3
    saved = gate.save_pretrained(tmp_path / "converted")
    converted = SmolVLMGate.from_pretrained(saved, backbone=None)
    assert torch.equal(converted.model.head[3].weight, gate.model.head[3].weight)
    assert converted.ladder.spec() == "cares"  # own format: the ladder saved in its config


def test_reference_checkpoint_errors_name_file_and_key(tmp_path, tiny_backbone):
    ckpt, *_ = _reference_checkpoint(tmp_path, seed=22, fmt="bin")
    state = torch.load(ckpt / "pytorch_model.bin", weights_only=True)
    missing = dict(state)
    del missing["backbone.model.text_model.layers.1.mlp.up_proj.weight"]
    torch.save(missing, ckpt / "pytorch_model.bin")
    with pytest.raises(GateLoadError, match="pytorch_model.bin") as info:
        SmolVLMGate.from_pretrained(ckpt, backbone=tiny_backbone)
    assert info.value.key == "backbone.model.text_model.layers.1.mlp.up_proj.weight"

    no_head = {k: v for k, v in state.items() if k != "head.3.bias"}
    torch.save(no_head, ckpt / "pytorch_model.bin")
    with pytest.raises(GateLoadError, match="head.3.bias"):
        SmolVLMGate.from_pretrained(ckpt, backbone=tiny_backbone)

    bad_shape = dict(state)
    bad_shape["head.0.weight"] = torch.ones(32)
    torch.save(bad_shape, ckpt / "pytorch_model.bin")
    with pytest.raises(GateLoadError, match="head.0.weight") as info:
        SmolVLMGate.from_pretrained(ckpt, backbone=tiny_backbone)
    assert info.value.key == "head.0.weight"

    (ckpt / "pytorch_model.bin").write_bytes(b"not a torch archive")
    with pytest.raises(GateLoadError, match="pytorch_model.bin"):
        SmolVLMGate.from_pretrained(ckpt, backbone=tiny_backbone)


def test_own_format_errors(tmp_path, tiny_gate_dir):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_gate_dir, broken)
    (broken / "head.safetensors").unlink()
    with pytest.raises(GateLoadError, match="head.safetensors"):
        SmolVLMGate.from_pretrained(broken)
    shutil.copy(tiny_gate_dir / "head.safetensors", broken / "head.safetensors")
    config = json.loads((broken / "config.json").read_text())
    config["num_classes"] = 4
    config["ladder"] = [384, 512, 768, "full"]
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(GateLoadError, match="head"):
        SmolVLMGate.from_pretrained(broken)
    config.update(num_classes=3, ladder=[384, 512, "full"], backbone=str(tmp_path / "nowhere"))
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(GateLoadError, match="nowhere"):
        SmolVLMGate.from_pretrained(broken)
    with pytest.raises(GateLoadError, match="neither"):
        SmolVLMGate.from_pretrained(tmp_path)  # an unrelated directory


def test_unknown_hub_id_offline_is_a_typed_error():
    with pytest.raises(GateLoadError, match="Hub"):
        SmolVLMGate.from_pretrained("nobody-here/no-such-gate")


def test_automodel_snippet(tiny_gate_dir, tiny_gate):
    from transformers import AutoModel, AutoProcessor

    import resgate_router.gate  # noqa: F401  (registers model_type "resgate" with the Auto classes)

    model = AutoModel.from_pretrained(tiny_gate_dir)
    processor = AutoProcessor.from_pretrained(tiny_gate_dir)
    images = [make_document_image(600, 800, seed=s) for s in (1, 2)]
    questions = ["What is the total?", "Which company issued this receipt?"]
    prompts = [
        processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}])
        for q in questions
    ]
    inputs = processor(
        text=prompts, images=[[im] for im in images], padding=True, return_tensors="pt", size={"longest_edge": 512}
    )
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (2, 3)
    assert (logits - tiny_gate.logits(images, questions)).abs().max().item() <= 1e-4
