"""Benchmark sets: the built-in Elena sets load, and a bad record is refused by line and field."""

from __future__ import annotations

import json

import pytest

from validation import sets
from validation.services import BUILTIN_SETS, parse_builtin


def line(**record) -> str:
    return json.dumps(record)


def ei(**overrides) -> dict:
    record = {"id": "ei-1", "category": "debt_shame", "messages": [{"role": "user", "content": "I owe $9,000."}],
              "good_reply": ["names the shame"], "reference": "That is heavy. What is the rate?", "needs_referral": False}
    record.update(overrides)
    return record


@pytest.mark.parametrize("builtin", BUILTIN_SETS, ids=lambda b: b.kind)
def test_the_builtin_sets_parse(builtin):
    parsed = parse_builtin(builtin)
    expected = {sets.EMOTIONAL_INTELLIGENCE: 50, sets.KNOWLEDGE_RETENTION: 100, sets.BRAND_VOICE: 30}
    assert len(parsed.items) == expected[builtin.kind]
    assert len(parsed.sha256) == 64


def test_the_builtin_sets_cover_what_the_issue_names():
    by_kind = {b.kind: parse_builtin(b) for b in BUILTIN_SETS}
    categories = [i["category"] for i in by_kind[sets.EMOTIONAL_INTELLIGENCE].items]
    assert {c: categories.count(c) for c in set(categories)} == {c: 5 for c in (
        "debt_shame", "job_loss", "grief_inheritance", "divorce", "retirement_fear", "medical_bills",
        "supporting_family", "windfall_guilt", "scams", "crisis_referral")}
    topics = [i["topic"] for i in by_kind[sets.KNOWLEDGE_RETENTION].items]
    assert {t: topics.count(t) for t in set(topics)} == {"taxes": 25, "retirement": 25, "investing": 25, "insurance": 25}
    keys = [c["key"] for c in by_kind[sets.BRAND_VOICE].characteristics]
    assert keys == ["warmth", "directness", "education_first", "plain_language", "concrete_numbers", "no_judgement",
                    "names_feeling_first", "one_next_step", "referrals_when_needed", "never_promises_returns"]


def test_every_problem_is_named_by_line_and_field():
    data = "\n".join([
        line(**ei()),
        "{not json",
        line(**ei(id="ei-1")),
        line(**ei(id="ei-3", messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])),
        line(**ei(id="ei-4", needs_referral=True)),
        line(**ei(id="ei-5", colour="red")),
    ]).encode()
    with pytest.raises(sets.SetError) as caught:
        sets.parse_items(sets.EMOTIONAL_INTELLIGENCE, data, file="mine.jsonl")
    found = {(p.line, p.field) for p in caught.value.problems}
    assert found == {(2, ""), (3, "id"), (4, "messages"), (5, "referral"), (6, "colour")}
    assert "mine.jsonl, line 3, field 'id': 'ei-1' is already used on line 1" in str(caught.value)


def test_a_question_needs_four_different_options_and_a_letter_key():
    record = {"id": "q", "topic": "taxes", "question": "What is a W-2?", "options": ["a", "b", "b", "c"],
              "answer": "E", "explanation": "It reports wages."}
    with pytest.raises(sets.SetError) as caught:
        sets.parse_items(sets.KNOWLEDGE_RETENTION, line(**record).encode())
    assert {(p.line, p.field) for p in caught.value.problems} == {(1, "options"), (1, "answer")}


def test_a_brand_voice_set_needs_its_rubric_with_every_anchor():
    prompts = line(id="p", messages=[{"role": "user", "content": "Should I buy crypto?"}]).encode()
    with pytest.raises(sets.SetError, match="needs its rubric"):
        sets.parse_set(sets.BRAND_VOICE, prompts)
    rubric = json.dumps({"characteristics": [{"key": "warmth", "name": "Warmth", "description": "Kind.",
                                              "anchors": {"1": "cold", "2": "cool", "3": "polite", "5": "warm"}}]})
    with pytest.raises(sets.SetError) as caught:
        sets.parse_set(sets.BRAND_VOICE, prompts, rubric=rubric.encode(), rubric_file="rubric.json")
    assert str(caught.value) == ("rubric.json, field 'characteristics[0].anchors': must describe each score "
                                 "\"1\" to \"5\" in words")


def test_not_utf8_and_empty_files_say_what_to_do():
    with pytest.raises(sets.SetError, match="is not UTF-8"):
        sets.parse_items(sets.KNOWLEDGE_RETENTION, b"\xff\xfe\x00")
    with pytest.raises(sets.SetError, match="has no records; one JSON object per line"):
        sets.parse_items(sets.KNOWLEDGE_RETENTION, b"\n\n")


def test_the_hash_names_the_content_and_the_rubric():
    prompts = line(id="p", messages=[{"role": "user", "content": "Hi"}]).encode()
    rubric_a = json.dumps({"characteristics": [{"key": "warmth", "name": "W", "description": "d",
                                                "anchors": {str(i): f"a{i}" for i in range(1, 6)}}]}).encode()
    rubric_b = rubric_a.replace(b"a5", b"b5")
    assert sets.parse_set(sets.BRAND_VOICE, prompts, rubric=rubric_a).sha256 != \
        sets.parse_set(sets.BRAND_VOICE, prompts, rubric=rubric_b).sha256


def test_too_many_problems_are_counted_not_listed():
    data = b"\n".join(b"{bad" for _ in range(sets.MAX_PROBLEMS + 5))
    with pytest.raises(sets.SetError) as caught:
        sets.parse_items(sets.KNOWLEDGE_RETENTION, data)
    assert len(caught.value.problems) == sets.MAX_PROBLEMS and caught.value.more == 5
    assert str(caught.value).endswith("and 5 more problems")
