"""Scoring on worked examples (lmms-eval semantics)."""

from __future__ import annotations

import pytest

from resgate_router import ConfigError
from resgate_router.metrics import anls, contains, exact_match, relaxed_accuracy, score


def test_anls_worked_examples():
    assert anls("12/10/98", ["12 /10 /98", "12/10/98"]) == 1.0
    # "12-10-98" vs "12/10/98": 2 edits over 8 characters -> 0.75
    assert anls("12-10-98", ["12/10/98"]) == pytest.approx(0.75)
    assert anls("  Attorney   GENERAL ", ["attorney general"]) == pytest.approx(1 - 0 / 21)  # raw length 21
    assert anls("totally wrong", ["12/10/98"]) == 0.0  # below the 0.5 threshold
    assert anls("abcdef", ["abcxyz"]) == 0.5 and anls("abcdeX", ["abcxyz"], threshold=0.6) == 0.0
    assert anls("", [""]) == 1.0 and anls("x", []) == 0.0


def test_relaxed_accuracy_worked_examples():
    assert relaxed_accuracy("10.4", ["10"]) == 1.0  # 4% off
    assert relaxed_accuracy("10.6", ["10"]) == 0.0  # 6% off
    assert relaxed_accuracy("52%", ["0.5"]) == 1.0  # 0.52 vs 0.5 is 4% off
    assert relaxed_accuracy("0", ["0"]) == 1.0  # zero target: exact match
    assert relaxed_accuracy("Yes", ["yes"]) == 1.0 and relaxed_accuracy("no", ["yes"]) == 0.0
    assert relaxed_accuracy("1000", ["2000", "1020"]) == 1.0  # best over the answers


def test_exact_and_contains():
    assert exact_match(" The  Total ", ["the total"]) == 1.0 and exact_match("total", ["the total"]) == 0.0
    assert contains("INVOICE\nTOTAL: $ 1,234.50\nThank you", ["1234.50"]) == 1.0
    assert contains("nothing here", ["1234.50"]) == 0.0 and contains("anything", ["", "  "]) == 0.0


def test_score_dispatch():
    assert score("anls", "12/10/98", ["12/10/98"]) == 1.0
    with pytest.raises(ConfigError, match="available"):
        score("bleu", "a", ["a"])
