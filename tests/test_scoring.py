import pytest

from harness.scoring import choice_letter, contains, exact_match, extract_choice, normalize, rouge_l, token_f1


def test_normalize_drops_case_punctuation_articles():
    assert normalize("The  Cat, sat!") == "cat sat"


def test_exact_match():
    assert exact_match("src, dst", "src dst") == 1.0
    assert exact_match("src, dst, x", "src, dst") == 0.0


def test_token_f1_known_value():
    # pred {return, the, number, of, items} vs ref {return, number, of, lines}: "the" dropped by normalize
    # common = 3 (return, number, of); precision 3/4, recall 3/4 -> F1 0.75
    assert token_f1("Return the number of items", "Return number of lines") == pytest.approx(0.75)
    assert token_f1("", "") == 1.0
    assert token_f1("x", "") == 0.0


def test_rouge_l_known_values():
    assert rouge_l("Return a copy of the list.", "Return a copy of the list.") == pytest.approx(1.0)
    # LCS is "return copy": precision 2/3 of the prediction, recall 2/4 of the reference
    assert rouge_l("return shallow copy", "return a copy here") == pytest.approx(2 * (2/3) * (2/4) / (2/3 + 2/4))
    assert rouge_l("unrelated words", "Return a copy") == 0.0


@pytest.mark.parametrize("text, letter", [
    ("Answer: C", "C"), ("The answer is (B)", "B"), ("I think B is right", "B"), ("I am not sure", None),
    ("D. Paris", "D"), ("(A) because", "A"),
    ("I think B is right", "B"), ("no idea", None),
])
def test_extract_choice(text, letter):
    assert extract_choice(text) == letter


def test_choice_letter_and_contains():
    assert choice_letter("Answer: C", "C") == 1.0
    assert choice_letter("Answer: C", "D") == 0.0
    assert contains("It is Paris, France.", "paris") == 1.0
    assert contains("It is Lyon.", "Paris") == 0.0
