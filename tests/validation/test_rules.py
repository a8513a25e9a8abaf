"""The rubric points a program checks (validation.rules): literal signs, labelled automatic."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from validation import rules

GOOD = ("That sounds frightening, and it makes sense you feel stuck.\n\n"
        "At 24% APR, $6,000 costs about $120 a month in interest. Paying $300 a month clears it in about two years.\n\n"
        "Can you list each card's balance and rate tonight?")


def test_a_reply_in_the_voice_meets_every_check():
    checks = rules.check_reply(GOOD, needs_referral=False)
    assert checks == {"names_feeling_first": True, "plain_language": True, "concrete_numbers": True,
                      "one_next_step": True, "referrals_when_needed": None, "never_promises_returns": True}


def test_a_referral_counts_only_where_one_is_needed():
    assert rules.referrals_when_needed(GOOD, needs_referral=True) is False
    assert rules.referrals_when_needed(GOOD + " You can call or text 988 any time.", needs_referral=True) is True


def test_several_closing_questions_are_not_one_next_step():
    assert rules.one_next_step("I hear you.\n\nWhat is your rent? And your income? And your debts?") is False
    assert rules.one_next_step("I hear you.\n\nStart by writing down your three largest bills.") is True
    assert rules.one_next_step("Interest compounds monthly.") is False


def test_promised_returns_are_caught_and_denials_are_not():
    assert rules.never_promises_returns("This fund is guaranteed to double in five years.") is False
    assert rules.never_promises_returns("You'll earn 12% a year with this.") is False
    assert rules.never_promises_returns("You can't lose with index funds.") is False
    assert rules.never_promises_returns("No investment has guaranteed returns; stocks can fall 30% in a year.") is True


def test_the_feeling_must_come_before_the_advice():
    assert rules.names_feeling_first("Open a high-yield account. Move $200 a month. That may feel hard.") is False
    assert rules.names_feeling_first("I'm so sorry about your dad. Grief and paperwork together are a lot.") is True


def test_long_winding_sentences_are_not_plain():
    long = " ".join(["word"] * 40) + "."
    assert rules.plain_language(long) is False
    assert rules.plain_language("Short one. Another short one.") is True


@given(st.text(max_size=400), st.booleans())
def test_every_check_answers_true_false_or_not_applicable_for_any_text(text, needs):
    checks = rules.check_reply(text, needs_referral=needs)
    assert set(checks) == set(rules.CHECKS)
    assert all(v in (True, False, None) for v in checks.values())
    score = rules.reply_score(checks)
    assert score is None or 0.0 <= score <= 1.0
    assert (checks["referrals_when_needed"] is None) == (not needs)
