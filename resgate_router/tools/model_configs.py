"""Model configs built from the published ones (no download): full-size SmolVLM-256M-Instruct,
SmolVLM-Instruct (2.2B) and Granite-Docling-258M, and a tiny SmolVLM for tests. Random weights built
from these time and count like the real models (FLOPs do not depend on weight values)."""

from __future__ import annotations

from typing import Any

__all__ = ["smolvlm_256m_config", "smolvlm_2b_config", "granite_docling_258m_config", "tiny_smolvlm_config"]

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
