from __future__ import annotations

import pytest

from resgate_router import FULL, ConfigError, Ladder


def test_named_ladders():
    assert Ladder.parse("card").rungs == (384, 512, FULL)
    assert Ladder.parse("cares").rungs == (384, 768, 1024)
    assert Ladder.parse(" CARD ").spec() == "card"


def test_custom_ladders():
    ladder = Ladder.parse("384,512,1024,full")
    assert ladder.rungs == (384, 512, 1024, FULL) and len(ladder) == 4 and ladder.spec() == "384,512,1024,full"
    assert Ladder.parse([384, "512", "full"]).spec() == "card"


@pytest.mark.parametrize(
    "spec", ["", "tiny", "384", "512,384", "384,full,512", "0,512", "-1,512", "384,abc", "384,384"]
)
def test_invalid_ladders(spec):
    with pytest.raises(ConfigError):
        Ladder.parse(spec)


def test_expected_resolution_and_pixels():
    ladder = Ladder.parse("card")
    assert ladder.expected_resolution([0.5, 0.25, 0.25], native_long_side=2000) == pytest.approx(192 + 128 + 500)
    assert ladder.pixels(FULL, 1500) == 1500 and ladder.pixels(512, 300) == 300 and ladder.pixels(512, 3000) == 512
    with pytest.raises(ConfigError):
        ladder.expected_resolution([0.5, 0.5], 1000)
