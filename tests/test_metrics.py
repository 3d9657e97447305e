"""Scoring on worked examples (lmms-eval semantics)."""

from __future__ import annotations

import pytest

from resgate_router import ConfigError
from resgate_router.tools.scoring import anls, contains, exact_match, relaxed_accuracy, score


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


def test_vqa_accuracy_worked_examples():
    from resgate_router.tools.scoring import normalize_vqa_answer, vqa_accuracy

    # EvalAI normalisation: case, punctuation, number words, articles, contractions
    assert normalize_vqa_answer("The Two dogs, isnt it?") == "2 dogs isn't it"
    assert normalize_vqa_answer("1,000.5 dollars.") == "1000.5 dollars"
    assert normalize_vqa_answer("e-mail") == "e mail" and normalize_vqa_answer("a cat") == "cat"
    # 10 human answers: each leave-one-out subset of 9 gives min(1, matches / 3), then the mean
    assert vqa_accuracy("two", ["2"] * 3 + ["x"] * 7) == pytest.approx(0.9)  # (3 * 2/3 + 7 * 1) / 10
    assert vqa_accuracy("2", ["2"] * 2 + ["x"] * 8) == pytest.approx(0.6)  # (2 * 1/3 + 8 * 2/3) / 10
    assert vqa_accuracy("2", ["2"] + ["x"] * 9) == pytest.approx(0.3)  # (0 + 9 * 1/3) / 10
    assert vqa_accuracy("The dog", ["dog"] * 10) == 1.0 and vqa_accuracy("cat", ["dog"] * 10) == 0.0
    assert vqa_accuracy("Dog.", ["dog"]) == 1.0  # one reference answer: normalised exact match
    assert vqa_accuracy("dog", []) == 0.0
    assert score("vqa", "yes!", ["yes"] * 10) == 1.0


def test_anls_over_lines():
    from resgate_router.tools.scoring import anls_lines

    page = "INVOICE\nTotal due: $12.50\n$12.50\nthanks"
    assert anls_lines(page, ["$12.50"]) == 1.0  # the line that is exactly the answer
    assert anls_lines("INVOICE\n$12.5O", ["$12.50"]) == pytest.approx(1 - 1 / 6)  # one OCR slip
    assert anls_lines("", ["x"]) == 0.0 and score("anls-lines", "a\nb", ["b"]) == 1.0
