"""Evaluation and tooling: labeling, the cost/accuracy bench, training, answer scoring, datasets and
synthetic pages. Nothing here runs while a request is gated; it needs the ``tools`` extra
(``rapidfuzz``, ``tqdm``) that the serving runtime does without. The ``resgate`` CLI's ``label``,
``bench``, ``train`` and ``demo`` commands live on it."""

from .._extras import require

require("tools", "rapidfuzz", "tqdm")  # a clear MissingExtraError with the pip command, not an ImportError
