"""``SmolVLMGate``: the CARES MLP resolution gate on a frozen SmolVLM (Idefics3) backbone."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import torch
from tokenizers import Tokenizer
from torch import nn

from ..errors import ConfigError, GateError, GateLoadError, InputError, QuestionError
from ..images import DEFAULT_MAX_PIXELS, ImageInput, load_image
from ..ladder import Ladder
from . import checkpoint as ckpt
from .batched import BatchedGate, check_options
from .compiled import CompiledRunner
from .config import DEFAULT_BACKBONE, ResGateConfig
from .decision import default_class_names
from .device_preprocess import DevicePreprocessor
from .model import FeatureBackbone, ResGateModel, make_head
from .preprocess import Idefics3Preprocessor, preprocessing_settings
from .profiles import check_profile

__all__ = ["SmolVLMGate", "SMOLVLM_OPTIONS"]

#: SmolVLMGate's own run-time options (besides ``max_pixels``, ``batch_size``)
SMOLVLM_OPTIONS = frozenset({"preprocessing", "compile"})
PREPROCESSING = ("auto", "host", "device")

logger = logging.getLogger(__name__)

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def _resolve_device_dtype(
    device: str | torch.device | None, dtype: str | torch.dtype | None
) -> tuple[torch.device, torch.dtype]:
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        return dev, torch.bfloat16 if dev.type == "cuda" else torch.float32
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r}: expected one of {sorted(_DTYPES)}")
        return dev, _DTYPES[dtype]
    return dev, dtype


def _load_processor(directory: Path) -> Any:
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(str(directory))  # type: ignore[no-untyped-call]
    except (OSError, ValueError, KeyError) as exc:
        raise GateLoadError(f"cannot load the processor from {directory}: {exc}", path=str(directory)) from exc
    processor.tokenizer.padding_side = "right"  # left padding would shift positions and change features
    return processor


def _backbone_dir(reference: str, gate_dir: Path | None) -> Path:
    if gate_dir is not None and not Path(reference).is_absolute() and (gate_dir / reference).is_dir():
        return gate_dir / reference
    return ckpt.resolve_dir(reference, "backbone")


class SmolVLMGate(BatchedGate):
    """Predicts, per (image, question), the smallest ladder rung the downstream VLM needs.

    Use :meth:`from_pretrained` for a saved gate directory, a reference CARES checkpoint or a Hub
    id; :meth:`from_backbone` for a fresh (untrained) head on a backbone.
    """

    def __init__(
        self,
        model: ResGateModel,
        processor: Any,
        *,
        ladder: Ladder,
        backbone_dir: Path,
        device: torch.device,
        dtype: torch.dtype,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        batch_size: int = 16,
        preprocessing: str = "auto",
        compile: bool = False,
    ) -> None:
        self.model, self.processor, self.config = model, processor, model.config
        self.ladder = ladder
        if len(ladder) != self.config.num_classes:
            raise ConfigError(
                f"ladder {ladder.spec()!r} has {len(ladder)} rungs for a gate of {self.config.num_classes} classes"
            )
        self.profile = check_profile(self.config.profile)
        self.backbone_dir = backbone_dir
        self.device, self.dtype = device, dtype
        self.max_pixels, self.batch_size = max_pixels, batch_size
        self.tile_size = int(processor.image_processor.max_image_size["longest_edge"])
        self.max_tokens = int(model.backbone.model.config.text_config.max_position_embeddings)
        #: the processor's settings the gate preprocesses with (an ONNX export stores the same)
        self.preprocessing = preprocessing_settings(processor, self._prompt, self.max_tokens)
        tokenizer = Tokenizer.from_str(processor.tokenizer.backend_tokenizer.to_str())  # a copy: settings change
        self.preprocessor = Idefics3Preprocessor(self.preprocessing, tokenizer, self.profile)
        self.device_preprocessor = self._device_preprocessor(preprocessing)
        self.runner = CompiledRunner(model, batch_size, self.preprocessor.pad_id) if compile else None
        # PIL decoding and resizing release the GIL: a batch's images are prepared in parallel.
        self._pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="resgate-prep")

    def _device_preprocessor(self, preprocessing: str) -> DevicePreprocessor | None:
        """Where the pixel work runs: ``host`` (PIL + numpy threads), ``device`` (torch on the gate's
        device, bit-identical) or ``auto`` (the device when it is a GPU)."""
        if preprocessing not in PREPROCESSING:
            raise ConfigError(f"unknown preprocessing {preprocessing!r}: expected one of {list(PREPROCESSING)}")
        if preprocessing == "host" or (preprocessing == "auto" and self.device.type == "cpu"):
            return None
        return DevicePreprocessor(self.preprocessor, self.device)

    # ---------------------------------------------------------------- construction
    @classmethod
    def _build(
        cls,
        backbone_dir: Path,
        config: ResGateConfig,
        *,
        head_state: dict[str, torch.Tensor] | None,
        backbone_state: dict[str, torch.Tensor] | None,
        state_file: Path | None,
        processor_dir: Path,
        ladder: str | Ladder | None,
        device: Any,
        dtype: Any,
        **options: Any,
    ) -> SmolVLMGate:
        from transformers import AutoConfig, AutoModelForImageTextToText

        dev, dt = _resolve_device_dtype(device, dtype)
        try:
            if backbone_state is None:
                full = AutoModelForImageTextToText.from_pretrained(
                    str(backbone_dir), dtype=torch.float32, attn_implementation="sdpa"
                )
            else:
                full = AutoModelForImageTextToText.from_config(  # type: ignore[no-untyped-call]
                    AutoConfig.from_pretrained(str(backbone_dir)), attn_implementation="sdpa"
                )
        except (OSError, ValueError, KeyError) as exc:
            raise GateLoadError(f"cannot load backbone {backbone_dir}: {exc}", path=str(backbone_dir)) from exc
        features = FeatureBackbone(full, config.layer, config.window)
        del full
        if backbone_state is not None:
            _load_backbone_state(features.model, backbone_state, state_file)
        config.feature_dim = features.feature_dim
        head = make_head(features.feature_dim, config.head_hidden, config.num_classes)
        if head_state is not None:
            file = state_file or Path("head")
            hidden, out = ckpt.check_head_state(head_state, file, features.feature_dim)
            expected = 1 if config.num_classes == 2 else config.num_classes
            if hidden != config.head_hidden or out != expected:
                raise GateLoadError(
                    f"{file}: head shapes (hidden {hidden}, outputs {out}) do not match the config "
                    f"(hidden {config.head_hidden}, outputs {expected})",
                    path=str(file),
                    key="head.3.weight",
                )
            head.load_state_dict({k[len("head.") :]: v for k, v in head_state.items() if k.startswith("head.")})
        model = ResGateModel(config, features.to(device=dev, dtype=dt), head.to(dev).eval())
        return cls(
            model,
            _load_processor(processor_dir),
            ladder=Ladder.parse(ladder or config.ladder),
            backbone_dir=backbone_dir,
            device=dev,
            dtype=dt,
            **options,
        )

    @classmethod
    def from_backbone(
        cls,
        backbone: str | Path = DEFAULT_BACKBONE,
        *,
        layer: int | str = "middle",
        window: int = 0,
        profile: str = "single-tile",
        ladder: str | Ladder = "card",
        num_classes: int = 3,
        head_hidden: int = 256,
        class_names: Sequence[str] | None = None,
        device: Any = None,
        dtype: Any = None,
        **options: Any,
    ) -> SmolVLMGate:
        """A gate with a freshly initialised (untrained) head, e.g. to train one."""
        check_options("SmolVLM MLP", options, SMOLVLM_OPTIONS)
        ladder = Ladder.parse(ladder)
        config = ResGateConfig(
            backbone=str(backbone),
            layer=layer,
            window=window,
            profile=check_profile(profile),
            ladder=ladder.to_list(),
            num_classes=num_classes,
            head_hidden=head_hidden,
            class_names=list(class_names) if class_names else default_class_names(num_classes),
        )
        bdir = ckpt.resolve_dir(backbone, "backbone")
        return cls._build(
            bdir,
            config,
            head_state=None,
            backbone_state=None,
            state_file=None,
            processor_dir=bdir,
            ladder=ladder,
            device=device,
            dtype=dtype,
            **options,
        )

    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str | Path,
        backbone: str | Path | None = None,
        profile: str | None = None,
        device: Any = None,
        dtype: Any = None,
        *,
        ladder: str | Ladder | None = None,
        layer: int | str | None = None,
        window: int | None = None,
        **options: Any,
    ) -> SmolVLMGate:
        """Load a gate saved by :meth:`save_pretrained`, or a reference CARES checkpoint directory
        (``backbone`` then names the base model; its default is SmolVLM-256M-Instruct, profile ``cares``)."""
        check_options("SmolVLM MLP", options, SMOLVLM_OPTIONS)
        directory = ckpt.resolve_dir(path_or_hub_id, "gate")
        if ckpt.is_own_format(directory):
            config = ResGateConfig.from_pretrained(str(directory))
            if config.gate_type != "smolvlm-mlp":
                raise GateLoadError(
                    f"{directory} holds a {config.gate_type!r} gate, not a SmolVLM MLP gate", path=str(directory)
                )
            if layer is not None or window is not None:
                raise ConfigError("layer/window are fixed by a trained gate's config and cannot be overridden")
            if backbone is not None:
                config.backbone = str(backbone)
            if profile is not None and profile != config.profile:
                logger.warning(
                    "gate %s was trained with profile %r; running it with %r", directory, config.profile, profile
                )
                config.profile = profile
            head_file = directory / ckpt.HEAD_FILE
            bdir = _backbone_dir(config.backbone, directory)
            pdir = directory if (directory / "tokenizer_config.json").is_file() else bdir
            return cls._build(
                bdir,
                config,
                head_state=ckpt.load_state_dict(head_file),
                backbone_state=None,
                state_file=head_file,
                processor_dir=pdir,
                ladder=ladder,
                device=device,
                dtype=dtype,
                **options,
            )
        file = ckpt.reference_file(directory)
        backbone_state, head_state = ckpt.split_reference_state(ckpt.load_state_dict(file), file)
        for key in ckpt.HEAD_KEYS:
            if key not in head_state:
                raise GateLoadError(f"{file} is missing key {key!r}", path=str(file), key=key)
        hidden, out = head_state["head.1.weight"].shape[0], head_state["head.3.weight"].shape[0]
        num_classes = 2 if out == 1 else out
        # CARES trained its classes on 384 / 768 / 1024 px (its data conversion and RESOLUTION_MAP), not
        # on the model card's 384 / 512 / 768+: the weights mean what their labels meant.
        ladder = Ladder.parse(ladder or ("cares" if num_classes == 3 else "384,full"))
        config = ResGateConfig(
            backbone=str(backbone or DEFAULT_BACKBONE),
            layer="middle" if layer is None else layer,
            window=window or 0,
            profile=check_profile(profile or "cares"),
            ladder=ladder.to_list(),
            num_classes=num_classes,
            head_hidden=int(hidden),
        )
        bdir = ckpt.resolve_dir(config.backbone, "backbone")
        return cls._build(
            bdir,
            config,
            head_state=head_state,
            backbone_state=backbone_state,
            state_file=file,
            processor_dir=bdir,
            ladder=ladder,
            device=device,
            dtype=dtype,
            **options,
        )

    def save_pretrained(self, out_dir: str | Path) -> Path:
        """Write ``config.json``, ``head.safetensors`` and the processor files to ``out_dir``."""
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        config = ResGateConfig.from_dict(self.config.to_dict())
        config.ladder = self.ladder.to_list()
        config.backbone = _backbone_reference(self.config.backbone, self.backbone_dir, out)
        config.save_pretrained(str(out))
        state = {f"head.{k}": v.detach().float().cpu().contiguous() for k, v in self.model.head.state_dict().items()}
        save_file(state, str(out / ckpt.HEAD_FILE), metadata={"format": "pt"})
        self.processor.save_pretrained(str(out))
        return out

    # ---------------------------------------------------------------- inference
    def _prompt(self, question: object) -> str:
        if not isinstance(question, str):
            raise QuestionError(f"question must be a string, got {type(question).__name__}")
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return cast(str, self.processor.apply_chat_template(messages, add_generation_prompt=False))

    def prepare(self, images: Sequence[ImageInput], questions: Sequence[object]) -> dict[str, torch.Tensor]:
        """Backbone inputs (``input_ids``, ``attention_mask``, ``pixel_values``, on the gate's device)
        for a batch, with the gate's profile applied: the shared preprocessing, equal to the processor's."""
        if isinstance(questions, str) or len(images) != len(questions):
            raise InputError("images and questions must be sequences of the same length")
        loaded = [load_image(image, max_pixels=self.max_pixels) for image in images]
        if self.device_preprocessor is not None:
            batch = self.device_preprocessor.batch(loaded, list(questions))
        else:
            arrays = self.preprocessor.batch(loaded, list(questions), self._pool)
            batch = {name: torch.from_numpy(array).to(self.device) for name, array in arrays.items()}
        batch["pixel_values"] = batch["pixel_values"].to(self.dtype)
        return batch

    @torch.inference_mode()
    def logits(self, images: Sequence[ImageInput], questions: Sequence[object]) -> torch.Tensor:
        """Raw head outputs (float32, on CPU): (batch, classes), or (batch, 1) for a binary gate."""
        batch = self.prepare(images, questions)
        try:
            return self.forward(batch).cpu()
        except RuntimeError as exc:  # torch reports OOM and kernel failures as RuntimeError
            raise GateError(f"gate forward pass failed: {exc}") from exc

    @torch.inference_mode()
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The head's logits for prepared inputs, through the compiled runner when there is one."""
        return self.runner(batch) if self.runner is not None else self.model(**batch).logits

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        if self.config.num_classes == 2:
            high = torch.sigmoid(logits[:, 0])
            return torch.stack([1 - high, high], dim=1)
        return torch.softmax(logits, dim=-1)

    def __repr__(self) -> str:
        return (
            f"SmolVLMGate(backbone={self.config.backbone!r}, layer={self.model.backbone.layer}, "
            f"window={self.config.window}, profile={self.profile!r}, ladder={self.ladder.spec()!r}, "
            f"device={self.device}, dtype={self.dtype})"
        )


def _load_backbone_state(model: nn.Module, state: dict[str, torch.Tensor], file: Path | None) -> None:
    """Load reference weights into the truncated model; every weight it keeps must be present."""
    needed = model.state_dict()
    for key, value in needed.items():
        if key not in state:
            raise GateLoadError(
                f"{file} is missing key 'backbone.model.{key}'", path=str(file), key=f"backbone.model.{key}"
            )
        if tuple(state[key].shape) != tuple(value.shape):
            raise GateLoadError(
                f"{file}: key 'backbone.model.{key}' has shape {tuple(state[key].shape)}, "
                f"the backbone config expects {tuple(value.shape)}",
                path=str(file),
                key=f"backbone.model.{key}",
            )
    model.load_state_dict({k: state[k] for k in needed}, strict=True)


def _backbone_reference(reference: str, backbone_dir: Path, out: Path) -> str:
    """Keep Hub ids; store local backbones relative to the gate dir when inside it, else absolute."""
    if not backbone_dir.exists() or str(backbone_dir).startswith(str(Path.home() / ".cache" / "huggingface")):
        return reference
    resolved, out_resolved = backbone_dir.resolve(), out.resolve()
    return str(resolved.relative_to(out_resolved)) if resolved.is_relative_to(out_resolved) else str(resolved)
