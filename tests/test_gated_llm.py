"""``GatedLLM`` on a real offline ``vllm.LLM`` (the tiny model, in this process)."""

from __future__ import annotations

import pytest
from vllm import SamplingParams

from resgate_router import Router
from resgate_router.gated_llm import GatedLLM
from resgate_router.messages import encode_data_url
from resgate_router.testing import make_document_image

PAGES = [make_document_image(1700, 2200, lines=40, seed=3), make_document_image(900, 600, lines=8, seed=4)]
GREEDY = SamplingParams(max_tokens=2, temperature=0)


class CountingGate:
    needs_pixels = True

    def __init__(self, gate) -> None:
        self.gate, self.ladder, self.class_names, self.calls = gate, gate.ladder, gate.class_names, []

    def predict_batch(self, images, questions):
        self.calls.append(len(images))
        return self.gate.predict_batch(images, questions)


def conversation(page, question="What is the total?"):
    content = [{"type": "image_url", "image_url": {"url": encode_data_url(page)}}, {"type": "text", "text": question}]
    return [{"role": "user", "content": content}]


@pytest.fixture()
def gated(vllm_llm, tiny_gate):
    return GatedLLM(vllm_llm, CountingGate(tiny_gate), metrics=False)


def test_chat_gates_every_conversation_in_one_call(gated, vllm_llm, tiny_gate):
    conversations = [conversation(PAGES[0]), conversation(PAGES[1], "Date?"), [{"role": "user", "content": "Hello"}]]
    outputs = gated.chat(conversations, GREEDY, use_tqdm=False)
    assert gated.router.family == "idefics3" and gated.router.gate.calls == [2]
    baseline = vllm_llm.chat(conversations, GREEDY, use_tqdm=False)
    dry = Router(tiny_gate, family="idefics3", model=gated.router.model, metrics=False)
    for conv, out, base in zip(conversations, outputs, baseline):
        record = dry.route({"messages": conv}).record
        assert len(out.prompt_token_ids) - len(base.prompt_token_ids) == record.routed_tokens - record.baseline_tokens
    assert gated.router.stats.requests == 3


def test_single_conversation_and_passthrough(gated):
    (output,) = gated.chat(conversation(PAGES[1]), GREEDY, use_tqdm=False)
    assert output.outputs[0].token_ids
    assert gated.get_tokenizer() is not None  # everything else is the engine's


def test_generate_with_image_prompts(gated, vllm_llm, tiny_gate):
    tokenizer = vllm_llm.get_tokenizer()
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Total?"}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    prompts = [{"prompt": text, "multi_modal_data": {"image": page}} for page in PAGES] + ["plain text prompt"]
    outputs = gated.generate(prompts, GREEDY, use_tqdm=False)
    baseline = vllm_llm.generate(prompts, GREEDY, use_tqdm=False)
    assert gated.router.gate.calls == [2]
    dry = Router(tiny_gate, family="idefics3", model=gated.router.model, metrics=False)
    for page, out, base in zip(PAGES, outputs, baseline):
        parts = [{"type": "image", "image": page}, {"type": "text", "text": text}]
        record = dry.route({"messages": [{"role": "user", "content": parts}]}).record
        assert len(out.prompt_token_ids) - len(base.prompt_token_ids) == record.routed_tokens - record.baseline_tokens
    assert len(outputs[2].prompt_token_ids) == len(baseline[2].prompt_token_ids)


def test_one_record_per_prompt_when_the_engine_succeeds_and_when_it_raises(vllm_llm, tiny_gate, tmp_path):
    from vllm.exceptions import VLLMValidationError

    from .logs import RECORD_FIELDS, read_records

    log = tmp_path / "savings.jsonl"
    gated = GatedLLM(vllm_llm, tiny_gate, metrics=False, log=log)
    gated.chat([conversation(PAGES[1]), conversation(PAGES[0], "Date?")], GREEDY, use_tqdm=False)
    too_long = conversation(PAGES[1], "word " * 5000)  # over the engine's max_model_len (4096): it raises
    with pytest.raises(VLLMValidationError):
        gated.chat([too_long], GREEDY, use_tqdm=False)
    gated.router.close()  # flushes the log
    records = read_records(log, 3)
    assert [r["status"] for r in records] == ["routed", "routed", "error"], records
    assert all(set(r) == RECORD_FIELDS for r in records), records  # the fields of every entry point's records
    assert all(isinstance(r["downstream_ms"], float) for r in records) and records[2]["error"] == "VLLMValidationError"


def test_a_prompt_refused_by_the_router_sends_none_and_records_each(vllm_llm, tiny_gate, tmp_path):
    from resgate_router import ImageError

    from .logs import RECORD_FIELDS, read_records

    log = tmp_path / "savings.jsonl"
    gated = GatedLLM(vllm_llm, tiny_gate, metrics=False, log=log, on_bad_input="raise")
    bad = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]
    with pytest.raises(ImageError):
        gated.chat([conversation(PAGES[1]), bad], GREEDY, use_tqdm=False)
    gated.router.close()
    records = read_records(log, 2)
    assert [r["status"] for r in records] == ["error", "error"] and all(set(r) == RECORD_FIELDS for r in records)
    assert all(r["downstream_ms"] is None for r in records)  # nothing reached the engine
