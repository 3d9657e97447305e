"""Offline builders of SmolVLM/Idefics3 models for tests, demos and timing (public API).

* :func:`build_tiny_smolvlm` writes a tiny random-weight Idefics3 model with a real tokenizer
  (trained here with ``tokenizers``), a real ``Idefics3Processor``, the SmolVLM chat template and
  SmolVLM's special tokens, as a normal Hugging Face directory loadable with ``from_pretrained``.
* :func:`smolvlm_256m_config` / :func:`build_smolvlm_256m` give the full-size SmolVLM-256M-Instruct
  architecture (random weights: FLOPs and latency do not depend on weight values).
* :func:`build_tiny_gate` writes a ready-to-load gate directory on top of a tiny backbone.
* :func:`granite_docling_258m_config` / :func:`build_granite_docling_258m` give the full-size
  Granite-Docling-258M architecture; :func:`build_tiny_granite_docling` a tiny one with its tied
  embeddings; :func:`build_tiny_granite_gate` a Granite LoRA gate directory (random adapter).
* :func:`make_document_image` renders a synthetic document page.

Nothing here touches the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from PIL import Image, ImageDraw

from .tools.model_configs import granite_docling_258m_config, smolvlm_256m_config, tiny_smolvlm_config

__all__ = [
    "SMOLVLM_CHAT_TEMPLATE",
    "smolvlm_256m_config",  # built in tools.model_configs; the public names are here
    "granite_docling_258m_config",
    "build_tokenizer",
    "build_processor",
    "processor_inputs",
    "build_tiny_smolvlm",
    "build_smolvlm_256m",
    "build_tiny_gate",
    "build_tiny_granite_docling",
    "build_granite_docling_258m",
    "build_tiny_granite_gate",
    "make_document_image",
]

#: The chat template of HuggingFaceTB/SmolVLM-256M-Instruct.
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

# SmolVLM's layout: <|endoftext|>, <|im_start|>, <|im_end|> first; then at the end of the base
# vocabulary <global-img>, <row_1_col_1>..<row_6_col_6>, <fake_token_around_image>, <image>;
# <end_of_utterance> is the last id. (SmolVLM-256M: base 49152, vocab 49280.)
_LEADING_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_IMAGE_SPECIALS = (
    ["<global-img>"]
    + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    + ["<fake_token_around_image>", "<image>"]
)
_END_OF_UTTERANCE = "<end_of_utterance>"

_CORPUS = (
    "User: Assistant: What is the total amount on this receipt? What is the date of the invoice? "
    "Read the heading of the form. The quick brown fox jumps over the lazy dog. 0123456789 $ . , : ; "
    "Which company issued this document? What value is entered for the field labeled NAME? "
    "the of and to in is on for with at by from this that what which who when where how much many"
)


def build_tokenizer(*, base_size: int = 384, vocab_size: int = 512) -> Any:
    """A byte-level BPE tokenizer trained on a small corpus, with SmolVLM's special tokens.

    ``<global-img>`` gets id ``base_size`` and ``<end_of_utterance>`` id ``vocab_size - 1``, as in
    SmolVLM (base 49152, vocab 49280); unused ids in between are reserved filler tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    n_image = len(_IMAGE_SPECIALS)
    if vocab_size < base_size + n_image + 1:
        raise ValueError("vocab_size too small for the special tokens")
    trainer = trainers.BpeTrainer(
        vocab_size=min(base_size, 400),
        special_tokens=_LEADING_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trained.train_from_iterator([_CORPUS], trainer=trainer)
    vocab = dict(trained.get_vocab())
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in _bpe_merges(trained)]
    ids = set(vocab.values())
    free = (i for i in range(vocab_size) if i not in ids)
    specials_at = {base_size + k: tok for k, tok in enumerate(_IMAGE_SPECIALS)}
    specials_at[vocab_size - 1] = _END_OF_UTTERANCE
    for slot in free:
        vocab[specials_at.get(slot, f"<|reserved_{slot}|>")] = slot
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=cast(list[tuple[str, str]], merges)))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(_LEADING_SPECIALS + _IMAGE_SPECIALS + [_END_OF_UTTERANCE])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        model_max_length=8192,
        extra_special_tokens={
            "fake_image_token": "<fake_token_around_image>",
            "image_token": "<image>",
            "end_of_utterance_token": _END_OF_UTTERANCE,
        },
    )


def _bpe_merges(tokenizer: Any) -> list[Any]:
    import json

    return json.loads(tokenizer.to_str())["model"]["merges"]


def build_processor(tokenizer: Any, *, longest_edge: int = 2048, tile: int = 512, image_seq_len: int = 64) -> Any:
    """A real ``Idefics3Processor`` with SmolVLM-256M's image settings (or the given ones) and chat
    template."""
    from transformers import Idefics3Processor
    from transformers.models.idefics3 import Idefics3ImageProcessorPil

    image_processor = Idefics3ImageProcessorPil(
        do_resize=True,
        size={"longest_edge": longest_edge},
        max_image_size={"longest_edge": tile},
        do_image_splitting=True,
        resample=Image.Resampling.LANCZOS,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
        do_pad=True,
        do_convert_rgb=True,
    )
    return Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=SMOLVLM_CHAT_TEMPLATE,
    )


def _save_model(out_dir: str | Path, config: Any, tokenizer: Any, seed: int) -> Path:
    import torch
    from transformers import AutoModelForImageTextToText

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config).eval()
    model.save_pretrained(out)
    build_processor(tokenizer).save_pretrained(out)
    return out


def build_tiny_smolvlm(out_dir: str | Path, *, num_text_layers: int = 4, seed: int = 0) -> Path:
    """Write a tiny random-weight SmolVLM (Idefics3) model + processor to ``out_dir``."""
    tokenizer = build_tokenizer(base_size=384, vocab_size=512)
    config = tiny_smolvlm_config(
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vocab_size=len(tokenizer),
        num_text_layers=num_text_layers,
    )
    return _save_model(out_dir, config, tokenizer, seed)


def build_smolvlm_256m(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Write the full-size SmolVLM-256M-Instruct architecture with random weights (about 1 GB)."""
    tokenizer = build_tokenizer(base_size=49152, vocab_size=49280)
    config = smolvlm_256m_config(image_token_id=tokenizer.convert_tokens_to_ids("<image>"))
    return _save_model(out_dir, config, tokenizer, seed)


def build_tiny_gate(
    out_dir: str | Path,
    *,
    backbone: str | Path | None = None,
    profile: str = "single-tile",
    seed: int = 0,
    **gate_kwargs: Any,
) -> Path:
    """Write a gate directory (random head) on a tiny backbone; builds the backbone if not given."""
    import torch

    from .gate import SmolVLMGate

    out = Path(out_dir)
    if backbone is None:
        backbone = build_tiny_smolvlm(out / "backbone", seed=seed)
    torch.manual_seed(seed + 1)
    gate = SmolVLMGate.from_backbone(backbone, profile=profile, **gate_kwargs)
    gate.save_pretrained(out)
    return out


def build_tiny_granite_docling(out_dir: str | Path, *, num_text_layers: int = 2, seed: int = 0) -> Path:
    """Write a tiny random-weight Granite-Docling-like model (Idefics3, tied embeddings) + processor.
    The processor (tokenizer, chat template) is the tiny SmolVLM one: the gate only needs single-token
    class digits, which this tokenizer has."""
    tokenizer = build_tokenizer(base_size=384, vocab_size=512)
    config = tiny_smolvlm_config(
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vocab_size=len(tokenizer),
        num_text_layers=num_text_layers,
        tied=True,
    )
    return _save_model(out_dir, config, tokenizer, seed)


def build_granite_docling_258m(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Write the full-size Granite-Docling-258M architecture with random weights (about 1 GB). Its
    processor is SmolVLM-256M's (same Idefics3 image settings; Granite's chat template differs by a
    few role tokens), with a tokenizer of Granite's vocabulary size."""
    tokenizer = build_tokenizer(base_size=100232, vocab_size=100352)
    config = granite_docling_258m_config(image_token_id=tokenizer.convert_tokens_to_ids("<image>"))
    return _save_model(out_dir, config, tokenizer, seed)


def build_tiny_granite_gate(
    out_dir: str | Path, *, base: str | Path | None = None, rank: int = 4, seed: int = 0, **gate_kwargs: Any
) -> Path:
    """Write a Granite LoRA gate directory with a random adapter (A and B both random, so it changes
    the outputs) on a tiny base; builds the base if not given."""
    import torch

    from .gate.granite import GraniteDoclingGate

    out = Path(out_dir)
    if base is None:
        base = build_tiny_granite_docling(out / "base", seed=seed)
    torch.manual_seed(seed + 1)
    gate = GraniteDoclingGate.from_base(base, rank=rank, init_lora_weights=False, **gate_kwargs)
    gate.save_pretrained(out)
    return out


def processor_inputs(gate: Any, images: list[Any], questions: list[str]) -> Any:
    """The reference a SmolVLM gate's own preprocessing must equal bit for bit: the profile's rendition
    (``cares``) or the whole image, then the gate's transformers processor (padded batch, tensors)."""
    from .gate.profiles import cares_canvas
    from .images import load_image

    pictures = [[cares_canvas(load_image(im)) if gate.profile == "cares" else load_image(im)] for im in images]
    size = {} if gate.profile == "cares" else {"size": {"longest_edge": gate.tile_size}}
    prompts = [gate._prompt(q) for q in questions]
    return gate.processor(text=prompts, images=pictures, padding=True, return_tensors="pt", **size)


def make_document_image(
    width: int = 850, height: int = 1100, *, lines: int = 30, seed: int = 0, text: str | None = None
) -> Image.Image:
    """A white page with a title and rows of dark text-like strokes (deterministic per seed)."""
    import random

    rng = random.Random(seed)
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    draw.text((width * 0.1, height * 0.04), text or f"INVOICE {seed:04d}", fill="black")
    top, step = height * 0.12, max(1.0, height * 0.8 / max(lines, 1))
    for row in range(lines):
        y = top + row * step
        x = width * 0.08
        while x < width * 0.9:
            word = rng.uniform(0.02, 0.09) * width
            draw.rectangle([x, y, min(x + word, width * 0.92), y + max(1.0, step * 0.35)], fill=(20, 20, 20))
            x += word + 0.015 * width
    return page
