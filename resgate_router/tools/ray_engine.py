"""``--engine ray``: the sweep behind ``resgate label`` / ``resgate bench``, and the feature extraction
of ``resgate train``, as Ray Data pipelines (a local Ray instance, or a cluster with ``--ray-address``).

The driver decides what is left to do (the same :class:`~resgate_router.tools.sweep.RunStore` and
feature cache as the local engine), turns it into a Ray Dataset, and a pool of actors does the work:
each actor builds its own downstream adapters from the ``--adapter`` spec (or loads the backbone) and
runs the local engine's code on its share (rendering each rung with the router, exactly as serving
does). In-process engines (``hf``, ``vllm``) and backbones get one GPU per actor, one actor per GPU of
the cluster; OCR and HTTP downstreams get one CPU per actor, one actor per CPU. The driver stores each
result as it streams back, so a killed run keeps what it finished and a rerun does only the rest; the
outputs are the local engine's.

Image paths must be readable where the actors run (a shared filesystem on a cluster); images decoded
in memory (Hugging Face datasets) travel as PNG bytes.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..images import load_image
from ..ladder import Ladder
from .datasets import Sample
from .sweep import RunStore, Sweep

__all__ = ["RaySweep", "RayOptions", "init_ray", "ray_features"]

logger = logging.getLogger(__name__)

IN_PROCESS_ENGINES = ("hf", "vllm")  # adapters that hold a model in the actor: one GPU each


class RayOptions:
    """Where and how wide: ``address`` (None: a local instance on this machine), ``actors`` (None:
    one per GPU for in-process engines, else one per CPU of the cluster), ``gpus_per_actor`` (None:
    1 for in-process engines when the cluster has GPUs, else 0)."""

    def __init__(
        self, address: str | None = None, actors: int | None = None, gpus_per_actor: float | None = None
    ) -> None:
        if actors is not None and actors < 1:
            raise ConfigError(f"--ray-actors must be >= 1, got {actors}")
        if gpus_per_actor is not None and gpus_per_actor < 0:
            raise ConfigError(f"--ray-gpus-per-actor must be >= 0, got {gpus_per_actor}")
        self.address, self.actors, self.gpus_per_actor = address, actors, gpus_per_actor

    def pool(self, *, needs_gpu: bool) -> tuple[int, float, float]:
        """(actors, CPUs per actor, GPUs per actor) on the running cluster."""
        import ray

        resources = ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
        per_gpu = self.gpus_per_actor if self.gpus_per_actor is not None else (1.0 if needs_gpu and gpus else 0.0)
        if per_gpu > 0 and not gpus:
            raise ConfigError("--ray-gpus-per-actor asks for GPUs, but the Ray cluster has none")
        if self.actors is not None:
            actors = self.actors
        elif per_gpu > 0:
            actors = max(1, int(gpus // per_gpu))
        else:
            if needs_gpu:
                logger.warning("the Ray cluster has no GPU: the in-process engine runs on CPU actors")
            actors = max(1, cpus)
        return actors, (1.0 if per_gpu == 0 else 0.0), per_gpu


def init_ray(address: str | None) -> None:
    """Connect to ``address``, or start a local instance bound to loopback. Ray's usage statistics
    are off unless the environment turns them on (nothing is sent anywhere)."""
    import ray
    import ray.data

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver's own bar counts the runs as they are stored
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if ray.is_initialized():
        return
    options: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **options)
    else:
        ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", **options)


def _transportable(image: Any) -> str | bytes:
    """A path as a string; a decoded image as lossless PNG bytes."""
    if isinstance(image, (str, Path)):
        return str(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _image(value: Any) -> Any:
    """What :func:`_transportable` sent, as the router takes it (a path, or the decoded image)."""
    return load_image(value) if isinstance(value, bytes) else str(value)


def _groups(todo: Sequence[tuple[Sample, int]]) -> list[dict[str, Any]]:
    """One row per (image, rung): its questions travel together, so an actor renders the page once
    (and the OCR reader, which memoises per page and size, reads it once)."""
    groups: dict[tuple[Any, int], dict[str, Any]] = {}
    for sample, k in todo:
        name = str(sample.image) if isinstance(sample.image, (str, Path)) else id(sample.image)
        group = groups.get((name, k))
        if group is None:
            group = groups[(name, k)] = {"image": _transportable(sample.image), "k": k, "ids": [], "questions": []}
        group["ids"].append(sample.id)
        group["questions"].append(sample.question)
    return list(groups.values())


# what an actor's Sweep needs of the driver's (the store, the progress bar and the pool stay here)
_ACTOR_OPTIONS = ("model", "policy", "concurrency", "max_tokens", "served_model", "stream", "batch_size")


class _SweepActor:
    """One worker of the pool: its own adapters and a storeless :class:`Sweep` running the local
    engine's code on each batch of (image, rung) groups."""

    def __init__(self, adapter: str, ladder: list[Any], options: dict[str, Any]) -> None:
        from ..adapters.base import build_adapters

        self.ladder = Ladder(tuple(ladder))
        self.sweep = Sweep(build_adapters(adapter), None, **options)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        todo = []
        for image, k, ids, questions in zip(batch["image"], batch["k"], batch["ids"], batch["questions"]):
            source = _image(image)
            todo += [(Sample(str(i), source, str(q)), int(k)) for i, q in zip(ids, questions)]
        runs = list(self.sweep.execute(self.ladder, todo))
        return {"runs": [json.dumps(runs, ensure_ascii=False)]}


class RaySweep(Sweep):
    """A :class:`Sweep` whose pairs run on Ray actors (``adapter``: the ``--adapter`` spec each actor
    builds its adapters from). The store, the failures and the progress bar stay on the driver."""

    def __init__(self, adapter: str, store: RunStore, *, ray: RayOptions | None = None, **options: Any) -> None:
        from ..adapters.base import get_adapter_class

        get_adapter_class(adapter.partition(":")[0].strip())  # an unknown adapter fails here, not in an actor
        super().__init__([adapter], store, **options)  # (the spec stands in for the adapters built remotely)
        self.spec, self.ray = adapter, ray or RayOptions()
        self.adapters = []  # built in the actors; nothing to close here
        self._options = {k: options[k] for k in _ACTOR_OPTIONS if k in options}

    def execute(self, ladder: Ladder, todo: Sequence[tuple[Sample, int]]) -> Iterator[dict[str, Any]]:
        if not todo:
            return
        import ray.data

        init_ray(self.ray.address)
        in_process = self.spec.partition(":")[0].strip() in IN_PROCESS_ENGINES
        actors, cpus, gpus = self.ray.pool(needs_gpu=in_process)
        groups = _groups(todo)
        if in_process:  # an engine gets about batch_size requests of one resolution per call
            groups.sort(key=lambda group: group["k"])
        # an HTTP or OCR actor about --concurrency requests at a time: the work spreads over the pool
        # and finished runs stream back (and are stored) early
        per_call = self.batch_size if in_process else self.concurrency
        batch = max(1, round(per_call * len(groups) / len(todo)))
        blocks = max(1, len(groups) // batch)
        data = ray.data.from_items(groups, override_num_blocks=blocks)
        results = data.map_batches(
            _SweepActor,
            fn_constructor_kwargs={"adapter": self.spec, "ladder": list(ladder.rungs), "options": self._options},
            batch_size=batch,
            compute=ray.data.ActorPoolStrategy(size=min(actors, blocks)),
            num_cpus=cpus,
            num_gpus=gpus,
        )
        for row in results.iter_rows():
            runs = json.loads(row["runs"])
            self.calls += len(runs)
            yield from runs


class _FeatureActor:
    """One worker of the feature pool: the backbone, loaded once, and a forward pass per batch. An
    image that does not load comes back with its error (the driver skips the sample, as locally)."""

    def __init__(self, gate_options: dict[str, Any]) -> None:
        from ..gate import SmolVLMGate

        self.gate = SmolVLMGate.from_backbone(**gate_options)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from ..errors import ImageError
        from .training.features import _forward

        images, errors = [], []
        for value in batch["image"]:
            try:
                source = value if isinstance(value, bytes) else str(value)  # decoded once, at the gate's limit
                images.append(load_image(source, max_pixels=self.gate.max_pixels))
                errors.append("")
            except ImageError as exc:
                errors.append(str(exc))
        ok = [i for i, e in enumerate(errors) if not e]
        dim = self.gate.model.backbone.feature_dim
        features = np.zeros((len(errors), dim), dtype=np.float32)
        if ok:
            questions = [str(batch["question"][i]) for i in ok]
            features[ok] = _forward(self.gate, images, questions).numpy()
        return {"key": list(batch["key"]), "feature": features, "error": errors}


def ray_features(
    gate_options: dict[str, Any], items: Sequence[tuple[str, Any, str]], *, batch_size: int, pool: RayOptions
) -> Iterator[tuple[str, Any, str]]:
    """Backbone features of ``(key, image, question)`` items on a pool of actors: yields
    ``(key, feature, error)`` as batches finish (``error`` non-empty: the image did not load)."""
    import ray.data

    init_ray(pool.address)
    actors, cpus, gpus = pool.pool(needs_gpu=True)
    rows = [{"key": key, "image": _transportable(image), "question": question} for key, image, question in items]
    blocks = max(1, len(rows) // batch_size)
    out = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
        _FeatureActor,
        fn_constructor_kwargs={"gate_options": gate_options},
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=min(actors, blocks)),
        num_cpus=cpus,
        num_gpus=gpus,
    )
    for row in out.iter_rows():
        yield str(row["key"]), row["feature"], str(row["error"])
