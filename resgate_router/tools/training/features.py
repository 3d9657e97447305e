"""Frozen backbone features, computed once and cached on disk.

The gate's backbone is frozen, so the pooled feature of a sample (what the head reads) never changes
for a given backbone and input setting. :func:`extract_features` computes it once per sample and
stores it; later runs (more epochs, other hyper-parameters, ``resgate evaluate``) only read it.

Layout of the cache (default ``$XDG_CACHE_HOME/resgate/features``, i.e. ``~/.cache/resgate/features``)::

    <cache>/backbones.json                 memo: backbone directory + file stamps -> content digest
    <cache>/<setting>/setting.json         backbone (path, digest), profile, layer, window, dtype
    <cache>/<setting>/<uuid>.safetensors   one file per extracted batch: "features" (n, d) float32,
                                           metadata "keys" = the n sample keys (JSON list)

``<setting>`` hashes what the feature depends on: the content of every file of the backbone
directory (weights, config, processor), the profile, the resolved layer, the window and the dtype.
A sample's key hashes its content: the image bytes (a file's bytes, or a PIL image's pixels) and the
question, so renaming ids or relabeling reuses features, and an edited image or question does not.
Each batch is written atomically as soon as it is done: an interrupted extraction keeps its work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ...errors import GateError, ImageError
from ...images import load_image
from ..datasets import DataError, Sample

if TYPE_CHECKING:
    from ..ray_engine import RayOptions

__all__ = ["FeatureSet", "FeatureCache", "default_cache_dir", "extract_features", "sample_key", "backbone_digest"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_CHUNK = 1 << 20


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "resgate" / "features"


@dataclass
class FeatureSet:
    """Features of the usable samples, in the order given (unreadable images removed)."""

    features: torch.Tensor  # (n, d) float32
    samples: list[Sample]
    hits: int = 0  # samples served from the cache
    extracted: int = 0  # backbone forward passes run now (cache misses)
    skipped: list[str] = field(default_factory=list)  # "id: reason" of samples whose image is unreadable
    setting: dict[str, Any] = field(default_factory=dict)
    cache_dir: str | None = None  # the setting's directory in the cache; None when not cached

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([s.label for s in self.samples], dtype=torch.long)


def _file_digest(path: Path, hasher: Any) -> None:
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            hasher.update(chunk)


def sample_key(sample: Sample) -> str:
    """Content key of a sample: image bytes (or pixels) + question."""
    hasher = hashlib.sha256()
    image = sample.image
    if isinstance(image, (str, os.PathLike)):
        hasher.update(b"file\0")
        _file_digest(Path(image), hasher)
    else:
        hasher.update(f"pil\0{image.mode}\0{image.size}\0".encode())
        hasher.update(image.tobytes())
    hasher.update(b"\0question\0" + sample.question.encode("utf-8"))
    return hasher.hexdigest()[:32]


def backbone_digest(directory: Path, memo_dir: Path | None = None) -> str:
    """Digest of every file of a backbone directory; memoised by (path, names, sizes, mtimes)."""
    directory = directory.resolve()
    files = sorted(p for p in directory.iterdir() if p.is_file())
    stamp = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    memo_file = memo_dir / "backbones.json" if memo_dir else None
    memo: dict[str, Any] = {}
    if memo_file and memo_file.is_file():
        try:
            memo = json.loads(memo_file.read_text())
        except (OSError, ValueError):
            memo = {}
    entry = memo.get(str(directory))
    if entry and entry.get("stamp") == stamp:
        return str(entry["digest"])
    hasher = hashlib.sha256()
    for path in files:
        hasher.update(path.name.encode() + b"\0")
        _file_digest(path, hasher)
    digest = hasher.hexdigest()[:32]
    if memo_file:
        memo[str(directory)] = {"stamp": stamp, "digest": digest}
        _atomic_write_text(memo_file, json.dumps(memo, indent=1))
    return digest


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class FeatureCache:
    """The stored features of one setting (backbone, profile, layer, window, dtype)."""

    def __init__(self, root: Path, setting: dict[str, Any]) -> None:
        name = hashlib.sha256(json.dumps(setting, sort_keys=True).encode()).hexdigest()[:16]
        self.directory = Path(root) / name
        self.setting = setting

    def load(self) -> dict[str, torch.Tensor]:
        from safetensors import SafetensorError, safe_open

        stored: dict[str, torch.Tensor] = {}
        if not self.directory.is_dir():
            return stored
        for file in sorted(self.directory.glob("*.safetensors")):
            try:
                with safe_open(str(file), framework="pt") as handle:
                    keys = json.loads(handle.metadata()["keys"])
                    rows = handle.get_tensor("features")
            except (OSError, ValueError, KeyError, SafetensorError) as exc:
                logger.warning("ignoring unreadable feature file %s: %s", file, exc)
                continue
            stored.update(zip(keys, rows))
        return stored

    def write(self, keys: Sequence[str], features: torch.Tensor) -> None:
        from safetensors.torch import save_file

        if not (self.directory / "setting.json").is_file():
            _atomic_write_text(self.directory / "setting.json", json.dumps(self.setting, indent=2))
        tmp = self.directory / f".{uuid.uuid4().hex}.tmp"
        save_file({"features": features.contiguous()}, str(tmp), metadata={"keys": json.dumps(list(keys))})
        os.replace(tmp, tmp.with_name(tmp.name[1:-4] + ".safetensors"))


def feature_setting(gate: Any, digest: str) -> dict[str, Any]:
    """What a pooled feature depends on, for a :class:`~resgate_router.gate.SmolVLMGate`."""
    return {
        "format": FORMAT_VERSION,
        "backbone": str(gate.backbone_dir),
        "backbone_digest": digest,
        "profile": gate.profile,
        "layer": gate.model.backbone.layer,
        "window": gate.model.backbone.window,
        "dtype": str(gate.dtype).replace("torch.", ""),
    }


@torch.inference_mode()
def _forward(gate: Any, images: list[Any], questions: list[str]) -> torch.Tensor:
    batch = gate.prepare(images, questions)
    try:
        pooled = gate.model.backbone(
            batch["input_ids"], batch["attention_mask"], batch["pixel_values"], batch.get("pixel_attention_mask")
        )
    except RuntimeError as exc:  # torch reports OOM and kernel failures as RuntimeError
        raise GateError(f"backbone forward pass failed: {exc}") from exc
    return pooled.float().cpu()


def extract_features(
    gate: Any,
    samples: Sequence[Sample],
    *,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    batch_size: int = 8,
    strict: bool = False,
    progress: bool = True,
    ray: RayOptions | None = None,
) -> FeatureSet:
    """Pooled backbone features of ``samples`` (the input of the gate's head), from the cache where
    present; the rest are computed in batches (with a progress bar) and stored.

    A sample whose image cannot be read is skipped and listed in ``skipped``; ``strict`` raises instead.
    ``ray``: compute the missing features on a Ray actor pool (:mod:`~resgate_router.tools.ray_engine`).
    """
    from tqdm.auto import tqdm

    keys: list[str | None] = []
    skipped: list[str] = []

    def skip(sample: Sample, reason: str) -> None:
        if strict:
            raise DataError(f"sample {sample.id!r}: {reason}")
        skipped.append(f"{sample.id}: {reason}")

    for sample in samples:
        try:
            keys.append(sample_key(sample))
        except OSError as exc:
            keys.append(None)
            skip(sample, f"cannot read image ({exc})")
    cache = None
    setting: dict[str, Any] = {"profile": gate.profile, "layer": gate.model.backbone.layer}
    if use_cache:
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        setting = feature_setting(gate, backbone_digest(Path(gate.backbone_dir), root))
        cache = FeatureCache(root, setting)
    stored = cache.load() if cache else {}
    todo: dict[str, Sample] = {}
    for sample, key in zip(samples, keys):
        if key is not None and key not in stored:
            todo.setdefault(key, sample)
    hits = sum(1 for k in keys if k is not None and k not in todo)
    bar = tqdm(total=len(todo), unit="sample", desc="extracting features", disable=not progress or not todo)
    pending = list(todo.items())
    extracted = 0

    def store(done_keys: list[str], features: torch.Tensor) -> None:
        nonlocal extracted
        if cache:
            cache.write(done_keys, features)
        stored.update(zip(done_keys, features))
        extracted += len(done_keys)

    if pending and ray is not None:
        _extract_on_ray(gate, pending, store, skip, bar, batch_size, ray)
    elif pending:
        _extract_here(gate, pending, store, skip, bar, batch_size)
    bar.close()
    usable = [(s, k) for s, k in zip(samples, keys) if k is not None and k in stored]
    matrix = (
        torch.stack([stored[k] for _, k in usable]).float()
        if usable
        else torch.zeros(0, gate.model.backbone.feature_dim)
    )
    directory = str(cache.directory) if cache else None
    return FeatureSet(matrix, [s for s, _ in usable], hits, extracted, skipped, setting, directory)


def _extract_here(
    gate: Any, pending: list[tuple[str, Sample]], store: Any, skip: Any, bar: Any, batch_size: int
) -> None:
    """The missing features in this process, ``batch_size`` samples per forward pass."""
    for start in range(0, len(pending), batch_size):
        done_keys, images, questions = [], [], []
        for key, sample in pending[start : start + batch_size]:
            try:
                images.append(load_image(sample.image, max_pixels=gate.max_pixels))
            except ImageError as exc:
                skip(sample, str(exc))
                continue
            done_keys.append(key)
            questions.append(sample.question)
        if done_keys:
            store(done_keys, _forward(gate, images, questions))
        bar.update(len(pending[start : start + batch_size]))


def _extract_on_ray(
    gate: Any, pending: list[tuple[str, Sample]], store: Any, skip: Any, bar: Any, batch_size: int, ray: RayOptions
) -> None:
    """The missing features from a Ray actor pool, stored in batches of ``batch_size`` as they arrive."""
    from ..ray_engine import ray_features

    options = {
        "backbone": str(gate.backbone_dir),
        "layer": gate.model.backbone.layer,
        "window": gate.model.backbone.window,
        "profile": gate.profile,
        "dtype": gate.dtype,  # the setting the cache files are kept under
    }
    by_key = dict(pending)
    items = [(key, sample.image, sample.question) for key, sample in pending]
    done_keys: list[str] = []
    rows: list[torch.Tensor] = []
    for key, feature, error in ray_features(options, items, batch_size=batch_size, pool=ray):
        if error:
            skip(by_key[key], error)
        else:
            done_keys.append(key)
            rows.append(torch.as_tensor(feature, dtype=torch.float32))
        if len(done_keys) >= batch_size:
            store(done_keys, torch.stack(rows))
            done_keys, rows = [], []
        bar.update(1)
    if done_keys:
        store(done_keys, torch.stack(rows))
