"""``GraniteDoclingGate``: the model card's autoregressive gate, Granite-Docling-258M (Idefics3) with
a LoRA adapter that answers the resolution class as a digit.

One forward pass, no sampling: the prompt (a probe of the page, longest side ``probe_size``, plus the
question and a request for the class) ends where the assistant's answer starts; the gate reads the
logits of the class tokens (``"0"``, ``"1"``, ``"2"``) at the last position, and their softmax is the
class distribution. Only those rows of the lm_head are computed. The adapter is merged into the base
weights at load (``merge=False`` keeps PEFT's LoRA layers; the outputs are equal).

A gate directory holds ``config.json`` (:class:`GraniteGateConfig`, ``gate_type: "granite-lora"``),
the PEFT adapter (``adapter_config.json`` + ``adapter_model.safetensors``) and the processor files.
A bare PEFT adapter directory loads too, with the default prompt and class tokens.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F

from ..errors import ConfigError, GateError, GateLoadError, InputError, QuestionError
from ..hub import read_json, resolve_dir
from ..images import DEFAULT_MAX_PIXELS, ImageInput, load_image
from ..ladder import Ladder
from .batched import BatchedGate, check_options
from .decision import default_class_names
from .lora_adapter import ADAPTER_WEIGHTS, adapter_state, attach_adapter, read_lora_config
from .profiles import single_tile_image
from .smolvlm import _backbone_dir, _backbone_reference, _load_processor, _resolve_device_dtype

__all__ = ["GraniteDoclingGate", "GraniteGateConfig", "DEFAULT_BASE", "DEFAULT_PROMPT", "TARGET_MODULES"]

DEFAULT_BASE = "ibm-granite/granite-docling-258M"
DEFAULT_PROMPT = "{question}\nWhich image resolution does answering this question need? Answer {choices}."
#: q/k/v/o and the MLP's gate/up/down projections (the names also match the vision tower's q/k/v).
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
GATE_TYPE = "granite-lora"
CONFIG_FILE = "config.json"


@dataclass
class GraniteGateConfig:
    """The ``config.json`` of a Granite LoRA gate directory."""

    base: str = DEFAULT_BASE
    ladder: list[Any] = field(default_factory=lambda: Ladder.parse("card").to_list())
    class_tokens: list[str] | None = None  # default: "0", "1", ... one per ladder rung
    class_names: list[str] | None = None
    probe_size: int = 256
    prompt: str = DEFAULT_PROMPT
    gate_type: str = GATE_TYPE

    def __post_init__(self) -> None:
        n = len(Ladder.parse(self.ladder))
        self.class_tokens = list(self.class_tokens or [str(k) for k in range(n)])
        self.class_names = list(self.class_names or default_class_names(n))
        if len(self.class_tokens) != n or len(self.class_names) != n:
            raise ConfigError(
                f"{n} ladder rungs need {n} class tokens and names, got {self.class_tokens} and {self.class_names}"
            )
        if len(set(self.class_tokens)) != n:
            raise ConfigError(f"class tokens must differ, got {self.class_tokens}")
        if not 16 <= int(self.probe_size) <= 4096:
            raise ConfigError(f"probe_size must be in [16, 4096] px, got {self.probe_size}")
        if "{question}" not in self.prompt:
            raise ConfigError(f"the gate prompt must contain '{{question}}', got {self.prompt!r}")

    @property
    def num_classes(self) -> int:
        return len(self.class_tokens or ())

    def save(self, directory: Path) -> None:
        (directory / CONFIG_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> GraniteGateConfig:
        data = read_json(directory / CONFIG_FILE)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def class_token_ids(tokenizer: Any, tokens: Sequence[str]) -> list[int]:
    """The id of each class token; each must be exactly one token of ``tokenizer``."""
    ids = []
    for token in tokens:
        encoded = tokenizer.encode(token, add_special_tokens=False)
        if len(encoded) != 1:
            raise ConfigError(f"class token {token!r} is {len(encoded)} tokens for this tokenizer, not one")
        ids.append(int(encoded[0]))
    return ids


class GraniteDoclingGate(BatchedGate):
    """Predicts the smallest ladder rung per (image, question) by asking Granite-Docling + LoRA for
    the class. :meth:`from_pretrained` loads a gate directory; :meth:`from_base` makes a fresh adapter."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        config: GraniteGateConfig,
        *,
        ladder: Ladder,
        base_dir: Path,
        lora_config: Any,
        device: torch.device,
        dtype: torch.dtype,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        batch_size: int = 16,
    ) -> None:
        self.model, self.processor, self.config = model, processor, config
        self.merged = not hasattr(model, "get_base_model")
        self.core = model if self.merged else model.get_base_model()  # Idefics3ForConditionalGeneration
        self.ladder = ladder
        if len(ladder) != config.num_classes:
            raise ConfigError(f"ladder {ladder.spec()!r} has {len(ladder)} rungs for {config.num_classes} classes")
        self.class_ids = class_token_ids(processor.tokenizer, config.class_tokens or ())
        self.base_dir, self.lora_config = base_dir, lora_config
        self.device, self.dtype = device, dtype
        self.max_pixels, self.batch_size = max_pixels, batch_size
        self.resample = int(getattr(processor.image_processor, "resample", 1))
        self._pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="resgate-prep")
        self.max_tokens = int(self.core.config.text_config.max_position_embeddings)
        self._adapter: dict[str, torch.Tensor] | None = None  # kept when merged, for save_pretrained

    # ---------------------------------------------------------------- construction
    @classmethod
    def _build(
        cls,
        base_dir: Path,
        config: GraniteGateConfig,
        lora_config: Any,
        state: dict[str, torch.Tensor] | None,
        *,
        processor_dir: Path,
        ladder: str | Ladder | None,
        merge: bool,
        device: Any,
        dtype: Any,
        where: Path,
        **options: Any,
    ) -> GraniteDoclingGate:
        from transformers import AutoModelForImageTextToText

        dev, dt = _resolve_device_dtype(device, dtype)
        try:
            base = AutoModelForImageTextToText.from_pretrained(str(base_dir), dtype=torch.float32)
        except (OSError, ValueError, KeyError) as exc:
            raise GateLoadError(f"cannot load base model {base_dir}: {exc}", path=str(base_dir)) from exc
        model = attach_adapter(base, lora_config, state, where).eval()
        if merge:
            model = model.merge_and_unload()  # in float32, before any cast
            model.requires_grad_(False)
        model.to(device=dev, dtype=dt)
        if not merge:  # PEFT casts around LoRA layers: keep their weights in float32 (stable training)
            for name, param in model.named_parameters():
                if ".lora_" in name:
                    param.data = param.data.float()
        gate = cls(
            model,
            _load_processor(processor_dir),
            config,
            ladder=Ladder.parse(ladder or config.ladder),
            base_dir=base_dir,
            lora_config=lora_config,
            device=dev,
            dtype=dt,
            **options,
        )
        gate._adapter = state
        return gate

    @classmethod
    def from_base(
        cls,
        base: str | Path = DEFAULT_BASE,
        *,
        ladder: str | Ladder = "card",
        class_tokens: Sequence[str] | None = None,
        class_names: Sequence[str] | None = None,
        probe_size: int = 256,
        prompt: str = DEFAULT_PROMPT,
        rank: int = 4,
        alpha: int = 16,
        dropout: float = 0.05,
        target_modules: Sequence[str] = TARGET_MODULES,
        init_lora_weights: bool = True,
        device: Any = None,
        dtype: Any = None,
        **options: Any,
    ) -> GraniteDoclingGate:
        """A gate with a fresh, unmerged adapter (LoRA B = 0 unless ``init_lora_weights=False``), e.g. to train."""
        from peft import LoraConfig

        check_options("Granite LoRA", options)
        ladder = Ladder.parse(ladder)
        config = GraniteGateConfig(
            base=str(base),
            ladder=ladder.to_list(),
            class_tokens=list(class_tokens) if class_tokens else None,
            class_names=list(class_names) if class_names else None,
            probe_size=probe_size,
            prompt=prompt,
        )
        if rank < 1 or alpha <= 0 or not 0.0 <= dropout < 1.0 or not target_modules:
            raise ConfigError(f"invalid LoRA settings: rank {rank}, alpha {alpha}, dropout {dropout}, {target_modules}")
        lora_config = LoraConfig(
            r=rank,
            lora_alpha=alpha,
            lora_dropout=dropout,
            target_modules=list(target_modules),
            bias="none",
            init_lora_weights=init_lora_weights,
        )
        bdir = resolve_dir(base, "base model")
        return cls._build(
            bdir,
            config,
            lora_config,
            None,
            processor_dir=bdir,
            ladder=ladder,
            merge=False,
            device=device,
            dtype=dtype,
            where=bdir,
            **options,
        )

    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str | Path,
        backbone: str | Path | None = None,
        device: Any = None,
        dtype: Any = None,
        *,
        ladder: str | Ladder | None = None,
        merge: bool = True,
        probe_size: int | None = None,
        base: str | Path | None = None,
        **options: Any,
    ) -> GraniteDoclingGate:
        """Load a gate directory (or a bare PEFT adapter directory). ``backbone`` (alias ``base``, as
        in :meth:`SmolVLMGate.from_pretrained`) names the base model; without it, the gate's config
        names it, else the adapter's ``base_model_name_or_path``, else Granite-Docling-258M."""
        check_options("Granite LoRA", options)
        if backbone is not None and base is not None and str(backbone) != str(base):
            raise ConfigError(f"backbone={str(backbone)!r} and its alias base={str(base)!r} disagree; give one")
        base = backbone if backbone is not None else base
        directory = resolve_dir(path_or_hub_id, "gate")
        lora_config = read_lora_config(directory)
        if (directory / CONFIG_FILE).is_file():
            kind = read_json(directory / CONFIG_FILE).get("gate_type")
            if kind != GATE_TYPE:
                raise GateLoadError(f"{directory} holds a {kind!r} gate, not a {GATE_TYPE!r} gate", path=str(directory))
            config = GraniteGateConfig.load(directory)
        else:
            config = GraniteGateConfig(base=lora_config.base_model_name_or_path or DEFAULT_BASE)
        if base is not None:
            config.base = str(base)
        if probe_size is not None:
            config = GraniteGateConfig(**{**asdict(config), "probe_size": probe_size})
        state = adapter_state(directory)
        bdir = _backbone_dir(config.base, directory)
        pdir = directory if (directory / "tokenizer_config.json").is_file() else bdir
        lora_config.inference_mode = True
        return cls._build(
            bdir,
            config,
            lora_config,
            state,
            processor_dir=pdir,
            ladder=ladder,
            merge=merge,
            device=device,
            dtype=dtype,
            where=directory,
            **options,
        )

    def adapter_state(self) -> dict[str, torch.Tensor]:
        """The LoRA weights (PEFT's saved key names), float32 on the CPU."""
        if not self.merged:
            from peft import get_peft_model_state_dict

            self._adapter = get_peft_model_state_dict(self.model, save_embedding_layers=False)
        if self._adapter is None:
            raise GateError("this merged gate has no adapter weights to save")
        return {k: v.detach().float().cpu().contiguous() for k, v in self._adapter.items()}

    def save_pretrained(self, out_dir: str | Path) -> Path:
        """Write ``config.json``, the adapter (``adapter_config.json``, ``adapter_model.safetensors``)
        and the processor files to ``out_dir``."""
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        config = GraniteGateConfig(**{**asdict(self.config), "ladder": self.ladder.to_list()})
        config.base = _backbone_reference(self.config.base, self.base_dir, out)
        config.save(out)
        lora_config = copy.copy(self.lora_config)
        lora_config.base_model_name_or_path = config.base
        lora_config.save_pretrained(str(out))
        save_file(self.adapter_state(), str(out / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        self.processor.save_pretrained(str(out))
        return out

    # ---------------------------------------------------------------- inference
    def _prompt(self, question: object) -> str:
        if not isinstance(question, str):
            raise QuestionError(f"question must be a string, got {type(question).__name__}")
        tokens = self.config.class_tokens or []
        choices = ", ".join(tokens[:-1]) + f" or {tokens[-1]}"
        text = self.config.prompt.replace("{choices}", choices).replace("{question}", question)
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        return cast(str, self.processor.apply_chat_template(messages, add_generation_prompt=True))

    def probe(self, image: ImageInput) -> Any:
        """The image the gate sees: longest side ``probe_size``, resized as the processor would."""
        return single_tile_image(load_image(image, max_pixels=self.max_pixels), self.config.probe_size, self.resample)

    def prepare(self, images: Sequence[ImageInput], questions: Sequence[object]) -> Any:
        """Processor outputs (right-padded, on the gate's device) for a batch."""
        if isinstance(questions, str) or len(images) != len(questions):
            raise InputError("images and questions must be sequences of the same length")
        prompts = [self._prompt(q) for q in questions]
        probes = list(self._pool.map(self.probe, images)) if len(images) > 1 else [self.probe(images[0])]
        batch = self.processor(
            text=prompts,
            images=[[p] for p in probes],
            padding=True,
            return_tensors="pt",
            size={"longest_edge": self.config.probe_size},
        )
        if batch["input_ids"].shape[1] > self.max_tokens:
            raise QuestionError(f"prompt is {batch['input_ids'].shape[1]} tokens, over the limit of {self.max_tokens}")
        batch["pixel_values"] = batch["pixel_values"].to(self.dtype)
        return batch.to(self.device)

    def last_hidden(self, batch: Any) -> torch.Tensor:
        """The final (normed) hidden state at each row's last prompt token: (batch, hidden)."""
        out = self.core.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"],
            pixel_attention_mask=batch.get("pixel_attention_mask"),
            use_cache=False,
            return_dict=True,
        )
        last = batch["attention_mask"].sum(dim=1) - 1  # right padding
        return cast(torch.Tensor, out.last_hidden_state[torch.arange(len(last), device=last.device), last])

    def class_logits(self, batch: Any) -> torch.Tensor:
        """Next-token logits of the class tokens only: (batch, classes), float32."""
        head = self.core.lm_head
        ids = torch.tensor(self.class_ids, device=head.weight.device)
        bias = head.bias[ids] if head.bias is not None else None
        return F.linear(self.last_hidden(batch), head.weight[ids], bias).float()

    @torch.inference_mode()
    def logits(self, images: Sequence[ImageInput], questions: Sequence[object]) -> torch.Tensor:
        batch = self.prepare(images, questions)
        try:
            return self.class_logits(batch).cpu()
        except RuntimeError as exc:  # torch reports OOM and kernel failures as RuntimeError
            raise GateError(f"gate forward pass failed: {exc}") from exc

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=-1)

    def __repr__(self) -> str:
        return (
            f"GraniteDoclingGate(base={self.config.base!r}, rank={self.lora_config.r}, merged={self.merged}, "
            f"probe_size={self.config.probe_size}, ladder={self.ladder.spec()!r}, device={self.device}, "
            f"dtype={self.dtype})"
        )
