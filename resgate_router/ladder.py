"""Resolution ladders: the rung (target longest side in px, or ``full``) of each gate class."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Union

from .errors import ConfigError

__all__ = ["FULL", "Rung", "Ladder", "NAMED_LADDERS"]

FULL: Literal["full"] = "full"
Rung = Union[int, Literal["full"]]

#: ``card``: the model card's 384 / 512 / 768+ classes, the top class read as the full resolution.
#: ``cares``: the paper's and the reference code's 384 / 768 / 1024.
NAMED_LADDERS: dict[str, tuple[Rung, ...]] = {
    "card": (384, 512, FULL),
    "cares": (384, 768, 1024),
}


def _parse_rung(value: object) -> Rung:
    if isinstance(value, str):
        text = value.strip().lower()
        if text == FULL:
            return FULL
        if not text.isdigit():
            raise ConfigError(f"invalid ladder rung {value!r}: expected a positive integer or 'full'")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"invalid ladder rung {value!r}: expected a positive integer or 'full'")
    return value


@dataclass(frozen=True)
class Ladder:
    """An ordered tuple of rungs, cheapest first; class ``k`` of a gate maps to ``rungs[k]``."""

    rungs: tuple[Rung, ...]
    name: str | None = None

    def __post_init__(self) -> None:
        if len(self.rungs) < 2:
            raise ConfigError(f"a ladder needs at least two rungs, got {list(self.rungs)}")
        numeric = [r for r in self.rungs if r != FULL]
        if FULL in self.rungs and self.rungs[-1] != FULL:
            raise ConfigError("'full' can only be the last rung of a ladder")
        if any(b <= a for a, b in zip(numeric, numeric[1:])):
            raise ConfigError(f"ladder rungs must increase strictly, got {list(self.rungs)}")

    @classmethod
    def parse(cls, spec: str | Iterable[object] | Ladder) -> Ladder:
        """``"card"``, ``"cares"``, ``"384,512,1024,full"`` or a sequence of rungs."""
        if isinstance(spec, Ladder):
            return spec
        if isinstance(spec, str):
            key = spec.strip().lower()
            if key in NAMED_LADDERS:
                return cls(NAMED_LADDERS[key], name=key)
            if "," not in key:
                raise ConfigError(
                    f"unknown ladder {spec!r}: use one of {sorted(NAMED_LADDERS)} or a list like '384,512,full'"
                )
            spec = key.split(",")
        rungs = tuple(_parse_rung(r) for r in spec)
        named = next((n for n, r in NAMED_LADDERS.items() if r == rungs), None)
        return cls(rungs, name=named)

    def __len__(self) -> int:
        return len(self.rungs)

    def __getitem__(self, index: int) -> Rung:
        return self.rungs[index]

    def to_list(self) -> list[Rung]:
        return list(self.rungs)

    def spec(self) -> str:
        return self.name or ",".join(str(r) for r in self.rungs)

    def pixels(self, rung: Rung, native_long_side: int) -> int:
        """Longest side a rung sends: never above the image's own (no upscaling)."""
        return native_long_side if rung == FULL else min(int(rung), native_long_side)

    def expected_resolution(self, probabilities: Sequence[float], native_long_side: int) -> float:
        """The paper's continuous estimate sum_k p_k * r_k, a ``full`` rung counting as native."""
        if len(probabilities) != len(self.rungs):
            raise ConfigError(f"{len(probabilities)} probabilities for a ladder of {len(self.rungs)} rungs")
        values = [native_long_side if r == FULL else int(r) for r in self.rungs]
        return float(sum(p * v for p, v in zip(probabilities, values)))
