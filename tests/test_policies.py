"""Family policies: token counts equal the real transformers processors' (property tests)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from resgate_router import ConfigError, ImageError
from resgate_router.policies import available_families, detect_family, get_policy, scaled_size

RUNGS = st.sampled_from(["full", 384, 512, 768, 1024, 1536])


@st.composite
def sizes(draw, max_side=6000, max_area=4_000_000):
    """Image sizes, extreme aspect ratios included (1 x 6000 and the like), area bounded for speed."""
    width = draw(st.integers(1, max_side))
    height = draw(st.integers(1, max(1, min(max_side, max_area // width))))
    return width, height


@pytest.fixture(scope="module")
def idefics3(tiny_backbone):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_backbone)
    return processor, get_policy(model=tiny_backbone)


def real_idefics3_tokens(processor, image, **kwargs):
    empty = len(processor.tokenizer("").input_ids)
    return len(processor(text=["<image>"], images=[[image]], **kwargs)["input_ids"][0]) - empty


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=sizes(), rung=RUNGS)
def test_idefics3_counts_equal_the_real_processor(idefics3, size, rung):
    processor, policy = idefics3
    plan = policy.plan([size], [rung])
    # applying the plan (pre-resized image + processor kwargs) to the real processor gives the count
    sent = Image.new("RGB", plan.images[0].send_size, "white")
    assert real_idefics3_tokens(processor, sent, **plan.processor_kwargs) == plan.images[0].tokens
    # and the count is what the original image costs at that longest edge
    edge = plan.processor_kwargs.get("size", {}).get("longest_edge")
    kwargs = {"size": {"longest_edge": edge}} if edge else {}
    assert real_idefics3_tokens(processor, Image.new("RGB", size, "white"), **kwargs) == plan.images[0].tokens


@pytest.fixture(scope="module")
def qwen2_processor():
    from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=sizes(max_side=8000, max_area=12_000_000), rung=RUNGS)
def test_qwen2_vl_counts_equal_the_real_processor(qwen2_processor, size, rung):
    policy = get_policy("qwen2_vl")
    try:
        plan = policy.plan([size], [rung])
    except ImageError as exc:  # the real processor refuses the same image
        assert "aspect" in str(exc)
        send = size if rung == "full" else scaled_size(*size, rung)
        with pytest.raises(ValueError, match="aspect ratio"):
            qwen2_processor(images=[Image.new("RGB", send)], return_tensors="np")
        return
    image = Image.new("RGB", plan.images[0].send_size, "white")
    grid = qwen2_processor(images=[image], return_tensors="np", **plan.processor_kwargs)["image_grid_thw"][0]
    assert int(grid.prod()) // 4 == plan.images[0].tokens
    plain = qwen2_processor(images=[image], return_tensors="np")["image_grid_thw"][0]
    assert int(plain.prod()) // 4 == plan.images[0].tokens  # pre-resizing alone gives the same count


@given(
    size=sizes(),
    rung=st.integers(1, 5000),
    family=st.sampled_from(["idefics3", "qwen2_vl", "internvl", "openai", "generic"]),
)
@settings(max_examples=300, deadline=None)
def test_never_upscaled(size, rung, family):
    policy = get_policy(family)
    try:
        plan = policy.plan([size], [rung]).images[0]
    except ImageError:  # qwen2_vl refuses aspect ratios over 200
        assert family == "qwen2_vl"
        return
    assert max(plan.send_size) <= max(size) and plan.send_size[0] <= size[0] and plan.send_size[1] <= size[1]
    slack = 1 if family == "idefics3" else 0  # the processor's even rounding may add 1 px to the short side
    assert max(plan.send_size) <= max(rung, 512 if family == "openai" else 0) + slack or plan.send_size == size


def test_idefics3_known_counts():
    policy = get_policy("idefics3")
    assert policy.visual_tokens(1700, 2200) == 17 * 64 + 16 * 2 + 4 + 3  # 4x4 tiles + global at 2048
    assert policy.visual_tokens(1700, 2200, 384) == policy.visual_tokens(1700, 2200, 512) == 67  # one tile
    assert policy.visual_tokens(300, 200, 512) == 67


def test_idefics3_request_shares_one_longest_edge():
    plan = get_policy("idefics3").plan([(1700, 2200), (1700, 2200)], [512, 1024])
    assert plan.processor_kwargs == {"size": {"longest_edge": 1024}}
    assert {image.tokens for image in plan.images} == {get_policy("idefics3").visual_tokens(1700, 2200, 1024)}
    assert get_policy("idefics3").plan([(1700, 2200)], ["full"]).processor_kwargs == {}


def test_openai_pricing():
    policy = get_policy("openai")
    assert policy.visual_tokens(1700, 2200, 384) == 85
    assert policy.visual_tokens(1024, 1024) == 85 + 170 * 4  # 768x768 -> 2x2 tiles
    assert policy.visual_tokens(4096, 8192) == 85 + 170 * 6  # fit 1024x2048, shortest to 768 -> 768x1536
    assert policy.plan([(2000, 1000)], [384]).images[0].detail == "low"


def test_internvl_budget_and_grid():
    policy = get_policy("internvl")
    assert policy.visual_tokens(448, 448, 384) == 256 + 2
    assert (
        policy.visual_tokens(1700, 2200)
        > policy.visual_tokens(1700, 2200, 1024)
        > policy.visual_tokens(1700, 2200, 512)
    )
    assert policy.plan([(1700, 2200)], [512]).processor_kwargs == {"max_patches": 4}


def test_continuous_round_up():
    policy = get_policy("idefics3")
    assert (
        policy.round_up(400.2, 2200) == 512
        and policy.round_up(600, 2200) == 1024
        and policy.round_up(2100, 2200) == "full"
    )
    assert get_policy("qwen2_vl").round_up(400, 3000) == 420


def test_registry():
    assert set(available_families()) >= {"idefics3", "qwen2_vl", "qwen3_vl", "internvl", "openai", "generic"}
    assert detect_family("smolvlm") == "idefics3" and detect_family("qwen2_5_vl") == "qwen2_vl"
    assert detect_family("llava") == "generic"
    with pytest.raises(ConfigError, match="available"):
        get_policy("no-such-family")


def test_family_detected_from_model_dir(tiny_backbone):
    policy = get_policy(model=tiny_backbone)
    assert policy.name == "idefics3" and policy.image_seq_len == 64 and policy.split_newline_extra == 1


def test_scaled_size():
    assert scaled_size(1700, 2200, 512) == (396, 512) and scaled_size(300, 200, 512) == (300, 200)
    assert scaled_size(20000, 50, 384) == (384, 1)


def test_third_party_family_through_an_entry_point(tmp_path, monkeypatch):
    """A family shipped by another distribution is found through the real entry-point machinery."""
    package = tmp_path / "acme_policy"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from resgate_router.policies import FamilyPolicy, ImagePlan, RequestPlan\n"
        "class AcmePolicy(FamilyPolicy):\n"
        "    name = 'acme'\n"
        "    def plan(self, natives, resolutions):\n"
        "        return RequestPlan(tuple(ImagePlan(n, r, n, 7) for n, r in zip(natives, resolutions)))\n"
    )
    dist = tmp_path / "acme_policy-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-policy\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[resgate_router.policies]\nacme = acme_policy:AcmePolicy\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "acme" in available_families()
    policy = get_policy("acme")
    assert policy.name == "acme" and policy.visual_tokens(100, 100) == 7


def test_idefics3_without_pre_resize_keeps_images_but_not_the_cost():
    plain, kwargs_only = get_policy("idefics3"), get_policy("idefics3", pre_resize=False)
    a, b = plain.plan([(1700, 2200)], [512]), kwargs_only.plan([(1700, 2200)], [512])
    assert a.processor_kwargs == b.processor_kwargs == {"size": {"longest_edge": 512}}
    assert a.images[0].tokens == b.images[0].tokens and a.images[0].resized and not b.images[0].resized
