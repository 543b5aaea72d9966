"""Sentences in points of the score, flips and counterfactuals."""

from __future__ import annotations

import pytest

from workers.ml.explain import phrasing


@pytest.mark.parametrize(
    ("share", "text"),
    [
        (0.06, "6 points"),
        (-0.06, "6 points"),
        (0.004, "less than 1 point"),
        (0.0049, "less than 1 point"),
        (0.005, "1 point"),
        (0.01, "1 point"),
        (0.125, "13 points"),  # half up, not to even
        (1.0, "100 points"),
    ],
)
def test_points_are_whole_hundredths_and_never_zero(share, text):
    assert phrasing.points_text(share) == text


def test_factor_sentences_speak_of_points_against_the_average_person():
    against = phrasing.points_sentence(["hours-per-week"], [20], -0.06)
    assert against == (
        "Your hours per week (20) counted against you: 6 points compared with "
        "the average person in the data the system learned from."
    )
    assert phrasing.points_sentence(["capital_gain"], [15024.0], 0.31) == (
        "Your capital gain (15,024) counted in your favour: 31 points compared "
        "with the average person in the data the system learned from."
    )
    pair = phrasing.points_sentence(["age", "sex"], [30, "Male"], 0.002)
    assert pair.startswith("Your age (30) together with your sex (Male) counted in")
    assert "less than 1 point" in pair
    assert "made no difference" in phrasing.points_sentence(["age"], [None], 0.0)
    assert "(unknown)" in phrasing.points_sentence(["age"], [None], 0.1)
    for sentence in (against, pair):
        assert "typical" not in sentence and "0 points" not in sentence
    # Names from the data are kept verbatim: escaping is the template's job.
    assert "<b>" in phrasing.points_sentence(["<b>x"], [1], 0.1)


def test_counterfactual_sentences_take_an_outcome_clause():
    assert phrasing.counterfactual_sentence(
        [("hours-per-week", 40, 45)], "your credit application was approved"
    ) == (
        "If your hours per week had been 45 instead of 40, the decision would "
        "have gone the other way: your credit application was approved."
    )
    two = phrasing.counterfactual_sentence(
        [("capital-gain", 0, 15024.0), ("occupation", "Sales", "Exec-managerial")],
        "your income was predicted above 50K.",
    )
    assert two.startswith("If your capital gain had been 15,024 instead of 0 and ")
    assert two.endswith("other way: your income was predicted above 50K.")
    assert phrasing.change_clause("age", 30, 31) == "your age had been 31 instead of 30"


def test_flip_sentences_name_the_attribute_and_what_a_proxy_stands_for():
    assert phrasing.flip_sentence("race", "Asian-Pac-Islander") == (
        "Had your race been recorded as Asian-Pac-Islander, with everything else "
        "the same, the system would have decided differently."
    )
    assert phrasing.flip_sentence("relationship", "Wife", linked_to="sex") == (
        "Had your relationship, which in our data is closely linked with sex, "
        "been recorded as Wife, with everything else the same, the system would "
        "have decided differently."
    )
    # A protected attribute is not described as linked with itself.
    assert "linked" not in phrasing.flip_sentence("sex", "Male", linked_to="sex")
