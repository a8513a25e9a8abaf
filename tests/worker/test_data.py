"""gpu_worker.data: formats, record problems, the seeded split, label masking."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpu_worker.data import (
    IGNORE_INDEX,
    MAX_STORED_PROBLEMS,
    Conversation,
    DatasetError,
    RecordProblem,
    load_dataset_file,
    split_conversations,
    token_statistics,
    tokenize_conversation,
    validate_dataset_file,
)


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def chat(*turns: tuple[str, str]) -> dict[str, Any]:
    return {"messages": [{"role": r, "content": c} for r, c in turns]}


# Formats


def test_it_reads_chat_messages_jsonl(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [
        chat(("system", "Be kind."), ("user", "Hi"), ("assistant", "Hello!"), ("user", "Bye"), ("assistant", "Bye!")),
        chat(("user", "2+2?"), ("assistant", "4")),
    ])
    report = validate_dataset_file(path)
    assert report.format == "messages"
    assert report.records == 2 and report.problems == [] and report.ok
    assert report.conversations[0].messages[0] == {"role": "system", "content": "Be kind."}
    assert len(report.conversations[0].messages) == 5
    assert report.conversations[0].trainable_turns is None  # every assistant message trains
    assert [c.line for c in report.conversations] == [1, 2]


def test_it_reads_training_pairs_and_trains_only_on_the_target(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [
        {
            "system_prompt": "You are a budgeting coach.",
            "conversation_history": [
                {"role": "user", "content": "I overspent."},
                {"role": "assistant", "content": "Let's look at it."},
            ],
            "current_user_input": "Where do I start?",
            "target_response": "List last month's expenses.",
            "quality_score": 0.9,  # metadata is ignored
            "source": "coach-v2",
        },
        {"current_user_input": "Hi", "target_response": "Hello", "conversation_history": None},
    ])
    report = validate_dataset_file(path)
    assert report.format == "training_pairs"
    first, second = report.conversations
    assert first.messages == [
        {"role": "system", "content": "You are a budgeting coach."},
        {"role": "user", "content": "I overspent."},
        {"role": "assistant", "content": "Let's look at it."},
        {"role": "user", "content": "Where do I start?"},
        {"role": "assistant", "content": "List last month's expenses."},
    ]
    assert first.trainable_turns == [4]
    assert second.messages == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def test_it_reads_prompt_completion(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "Capital of France?", "completion": "Paris."}])
    report = validate_dataset_file(path)
    assert report.format == "prompt_completion"
    assert report.conversations[0].messages == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]


def test_it_reads_a_json_array_and_knows_each_records_line(tmp_path):
    records = [{"prompt": "a", "completion": "b"}, {"prompt": "c"}, {"prompt": "e", "completion": "f"}]
    path = tmp_path / "d.json"
    path.write_text(json.dumps(records, indent=2))  # one key per line
    report = load_dataset_file(path)
    assert report.format == "prompt_completion"
    assert report.records == 3
    assert [c.line for c in report.conversations] == [2, 9]
    assert [str(p) for p in report.problems] == ["line 6 (record 2): completion is missing"]


def test_it_skips_blank_lines_in_jsonl_and_accepts_a_byte_order_mark(tmp_path):
    path = tmp_path / "d.jsonl"
    line = json.dumps({"prompt": "a", "completion": "b"})
    path.write_bytes(("\ufeff" + line + "\n\n   \n" + line + "\n").encode())
    report = validate_dataset_file(path)
    assert report.records == 2
    assert [c.line for c in report.conversations] == [1, 4]


def test_openai_weight_zero_keeps_a_turn_as_context_only(tmp_path):
    record = chat(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d"))
    record["messages"][1]["weight"] = 0
    report = validate_dataset_file(write_jsonl(tmp_path / "d.jsonl", [record]))
    assert report.conversations[0].trainable_turns == [3]


# Record problems: exact messages


def test_a_weight_other_than_zero_or_one_is_a_problem(tmp_path):
    record = chat(("user", "a"), ("assistant", "b"))
    record["messages"][1]["weight"] = 0.5
    report = load_dataset_file(write_jsonl(tmp_path / "d.jsonl", [record]))
    assert [str(p) for p in report.problems] == ["line 1: messages[1].weight must be 0 or 1 (got 0.5)"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["messages", "role", "content", "prompt", "completion", "current_user_input",
                         "target_response", "system_prompt", "conversation_history", "weight"]),
        children, max_size=5,
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(json_values | st.text(max_size=20), min_size=1, max_size=6))
def test_bad_records_never_raise_anything_but_a_dataset_error(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("fuzz") / "d.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines))
    try:
        report = load_dataset_file(path)
    except DatasetError as exc:
        assert "Traceback" not in str(exc)
        return
    # Every record is either a conversation or has at least one problem, never both.
    assert len(report.conversations) + len({(p.line, p.record) for p in report.problems}) == report.records
    for problem in report.problems:
        assert re.match(rf"line {problem.line}( \(record {problem.record}\))?: \S", str(problem))


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"current_user_input": "hi"}, "line 1: target_response is missing"),
        ({"current_user_input": "hi", "target_response": "   "}, "line 1: target_response is empty"),
        ({"current_user_input": 3, "target_response": "x"}, "line 1: current_user_input must be a string (got number)"),
        ({"current_user_input": "hi", "target_response": "x", "system_prompt": ""}, "line 1: system_prompt is empty"),
        (
            {"current_user_input": "hi", "target_response": "x", "conversation_history": [{"role": "system", "content": "s"}]},
            "line 1: conversation_history[0].role must be one of user, assistant (got 'system')",
        ),
        (
            {"current_user_input": "hi", "target_response": "x", "conversation_history": "earlier"},
            "line 1: conversation_history must be an array of {role, content} objects (got string)",
        ),
    ],
)
def test_training_pair_problems_name_line_field_and_reason(tmp_path, record, expected):
    good = {"current_user_input": "a", "target_response": "b"}
    report = load_dataset_file(write_jsonl(tmp_path / "d.jsonl", [record, good]))
    assert report.format == "training_pairs"
    assert [str(p) for p in report.problems] == [expected]
    assert len(report.conversations) == 1


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (
            [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "bot", "content": "c"}],
            "line 1: messages[2].role must be one of system, user, assistant (got 'bot')",
        ),
        ([{"role": "user", "content": "a"}], "line 1: messages must contain at least one assistant message"),
        ([{"role": "user", "content": "a"}, {"role": "assistant"}], "line 1: messages[1].content is missing"),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": None}], "line 1: messages[1].content must be a string (got null)"),
        ([{"content": "a"}, {"role": "assistant", "content": "b"}], "line 1: messages[0].role is missing"),
        (["hello", {"role": "assistant", "content": "b"}], "line 1: messages[0] must be an object with role and content (got string)"),
        ([], "line 1: messages must not be empty"),
        ({"role": "user"}, "line 1: messages must be an array of {role, content} objects (got object)"),
    ],
)
def test_chat_problems_name_line_field_and_reason(tmp_path, messages, expected):
    good = chat(("user", "q"), ("assistant", "a"))
    report = load_dataset_file(write_jsonl(tmp_path / "d.jsonl", [{"messages": messages}, good]))
    assert report.format == "messages"
    assert [str(p) for p in report.problems] == [expected]


def test_invalid_json_lines_are_reported_with_the_parsers_reason(tmp_path):
    good = json.dumps({"prompt": "a", "completion": "b"})
    path = write_jsonl(tmp_path / "d.jsonl", [good, good, '{"prompt": "a" "completion": "b"}', "[1, 2]"])
    report = load_dataset_file(path)
    assert [str(p) for p in report.problems] == [
        "line 3: not valid JSON (Expecting ',' delimiter at column 16)",
        "line 4: record must be a JSON object (got array)",
    ]
    assert report.records == 4 and len(report.conversations) == 2


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    records = [
        {"prompt": "a", "completion": "b"},
        {"prompt": "a"},
        {"completion": "b"},
        {"prompt": "", "completion": 5},
    ]
    report = load_dataset_file(write_jsonl(tmp_path / "d.jsonl", records))
    assert [str(p) for p in report.problems] == [
        "line 2: completion is missing",
        "line 3: prompt is missing",
        "line 4: prompt is empty",
        "line 4: completion must be a string (got number)",
    ]
    with pytest.raises(DatasetError) as caught:
        validate_dataset_file(report_path := tmp_path / "d.jsonl")
    text = str(caught.value)
    assert text.splitlines()[0] == f"{report_path}: 4 problems in 4 records (prompt_completion format)"
    assert "  line 4: completion must be a string (got number)" in text.splitlines()
    assert "Traceback" not in text
    assert caught.value.problems == report.problems


def test_stored_problems_are_capped_but_all_are_counted(tmp_path):
    records = [{"prompt": "a", "completion": "b"}] + [{"prompt": "a"}] * (MAX_STORED_PROBLEMS + 50)
    report = load_dataset_file(write_jsonl(tmp_path / "d.jsonl", records))
    assert len(report.problems) == MAX_STORED_PROBLEMS
    assert report.problem_count == MAX_STORED_PROBLEMS + 50
    with pytest.raises(DatasetError) as caught:
        validate_dataset_file(tmp_path / "d.jsonl")
    assert caught.value.problem_count == MAX_STORED_PROBLEMS + 50
    assert str(caught.value).splitlines()[-1] == f"  ... and {MAX_STORED_PROBLEMS + 30} more problems"


def test_record_problem_reads_as_one_line():
    assert str(RecordProblem(47, "target_response", "is missing")) == "line 47: target_response is missing"
    assert str(RecordProblem(9, "", "not valid JSON (x)")) == "line 9: not valid JSON (x)"


# Whole-file failures raise, with a line number where there is one


def test_a_missing_file_raises_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match=r"cannot read the dataset file \(No such file or directory\)"):
        load_dataset_file(tmp_path / "nope.jsonl")


@pytest.mark.parametrize("content", ["", "  \n\n"])
def test_an_empty_file_raises(tmp_path, content):
    (tmp_path / "d.jsonl").write_text(content)
    with pytest.raises(DatasetError, match="the dataset file is empty"):
        load_dataset_file(tmp_path / "d.jsonl")


def test_a_broken_json_array_raises_with_line_and_column(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n  {"prompt": "a", "completion": "b"},\n  {"prompt": "a" "completion": "b"}\n]\n')
    with pytest.raises(DatasetError) as caught:
        load_dataset_file(path)
    assert str(caught.value) == (
        f"{path}: not valid JSON at line 3 column 18: Expecting ',' delimiter (in record 2 of the array)"
    )


def test_text_that_is_not_json_at_all_raises(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("question,answer\nhi,hello\n")
    with pytest.raises(DatasetError) as caught:
        load_dataset_file(path)
    assert str(caught.value).splitlines()[0] == f"{path}: not JSON or JSONL: no line holds a JSON record"
    assert str(caught.value.problems[0]).startswith("line 1: not valid JSON (Expecting value at column 1)")


def test_a_single_json_object_is_explained(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"data": [{"prompt": "a", "completion": "b"}]}, indent=2))
    with pytest.raises(DatasetError, match="single JSON object; expected a JSON array of records or JSONL"):
        load_dataset_file(path)


def test_an_unknown_format_names_the_fields_it_saw(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(DatasetError, match=r"unknown dataset format.*the first record \(line 1\) has fields answer, question"):
        load_dataset_file(path)


def test_a_file_that_is_not_utf8_raises_with_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"prompt": "a", "completion": "b"}\n{"prompt": "\xff"}\n')
    with pytest.raises(DatasetError, match=r"line 2: not UTF-8 text"):
        load_dataset_file(path)


def test_records_of_another_format_are_reported_against_the_files_format(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [chat(("user", "a"), ("assistant", "b"))] * 2 + [{"prompt": "p", "completion": "c"}])
    report = load_dataset_file(path)
    assert report.format == "messages"
    assert [str(p) for p in report.problems] == ["line 3: messages is missing"]


# Split


def conversations(n: int) -> list[Conversation]:
    return [Conversation([{"role": "user", "content": str(i)}, {"role": "assistant", "content": "x"}], i + 1) for i in range(n)]


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 300), fraction=st.floats(0.01, 0.99), seed=st.integers(0, 2**32))
def test_the_split_is_seeded_complete_disjoint_and_sized(n, fraction, seed):
    convs = conversations(n)
    train, held_out = split_conversations(convs, fraction, seed)
    assert (train, held_out) == split_conversations(convs, fraction, seed)
    lines = [c.line for c in train] + [c.line for c in held_out]
    assert sorted(lines) == list(range(1, n + 1))  # union is everything, nothing twice
    if n >= 2:
        assert len(train) >= 1 and len(held_out) >= 1
        assert abs(len(held_out) - n * fraction) <= 1 or len(held_out) in (1, n - 1)
    else:
        assert held_out == []


def test_different_seeds_give_different_splits():
    convs = conversations(100)
    assert split_conversations(convs, 0.2, 1)[1] != split_conversations(convs, 0.2, 2)[1]


def test_the_split_does_not_depend_on_hash_randomisation():
    code = (
        "from gpu_worker.data import Conversation, split_conversations\n"
        "c = [Conversation([{'role': 'user', 'content': str(i)}], i) for i in range(50)]\n"
        "print([x.line for x in split_conversations(c, 0.2, 7)[1]])\n"
    )
    root = Path(__file__).resolve().parents[2]
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_the_split_refuses_a_fraction_outside_zero_and_one():
    with pytest.raises(ValueError, match="eval_fraction"):
        split_conversations(conversations(4), 1.0, 0)


# Tokenisation and label masking


def labelled_runs(result: dict[str, Any]) -> list[list[int]]:
    """Contiguous runs of labelled tokens."""
    runs: list[list[int]] = []
    previous = False
    for token, label in zip(result["input_ids"], result["labels"], strict=True):
        if label != IGNORE_INDEX:
            assert label == token  # labels are the input ids themselves; the model shifts
            if not previous:
                runs.append([])
            runs[-1].append(token)
        previous = label != IGNORE_INDEX
    return runs


MULTI_TURN = [
    {"role": "system", "content": "You are a budgeting coach."},
    {"role": "user", "content": "I spent too much on food."},
    {"role": "assistant", "content": "How much, roughly?"},
    {"role": "user", "content": "About $600."},
    {"role": "assistant", "content": "Try a weekly limit of $120.\nTrack it in a note."},
]


def test_only_assistant_contents_and_their_end_of_turn_are_labelled(tokenizer):
    result = tokenize_conversation(tokenizer, MULTI_TURN, max_seq_length=512)
    assert result["truncated"] is False
    assert len(result["input_ids"]) == len(result["labels"])
    full = tokenizer.apply_chat_template(MULTI_TURN, tokenize=False)
    assert tokenizer.decode(result["input_ids"]) == full
    assert [tokenizer.decode(run) for run in labelled_runs(result)] == [
        "How much, roughly?<|im_end|>",
        "Try a weekly limit of $120.\nTrack it in a note.<|im_end|>",
    ]


def test_the_injected_default_system_prompt_is_not_labelled(tokenizer):
    # SmolLM2's template adds its own system prompt when the conversation has none.
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    result = tokenize_conversation(tokenizer, messages, max_seq_length=512)
    assert "You are a helpful AI assistant named SmolLM" in tokenizer.decode(result["input_ids"])
    assert [tokenizer.decode(run) for run in labelled_runs(result)] == ["Hello!<|im_end|>"]


def test_a_conversation_opening_with_the_assistant_labels_only_its_turns(tokenizer):
    messages = [
        {"role": "assistant", "content": "Welcome back."},
        {"role": "user", "content": "Thanks"},
        {"role": "assistant", "content": "Any time."},
    ]
    result = tokenize_conversation(tokenizer, messages, max_seq_length=512)
    assert [tokenizer.decode(run) for run in labelled_runs(result)] == ["Welcome back.<|im_end|>", "Any time.<|im_end|>"]


def test_trainable_turns_limit_the_loss_to_those_turns(tokenizer):
    result = tokenize_conversation(tokenizer, MULTI_TURN, max_seq_length=512, trainable_turns=[4])
    assert [tokenizer.decode(run) for run in labelled_runs(result)] == [
        "Try a weekly limit of $120.\nTrack it in a note.<|im_end|>",
    ]


def test_long_conversations_are_truncated_and_say_so(tokenizer):
    result = tokenize_conversation(tokenizer, MULTI_TURN, max_seq_length=30)
    assert result["truncated"] is True
    assert len(result["input_ids"]) == len(result["labels"]) == 30


def test_token_statistics_count_what_training_sees(tokenizer):
    short = Conversation([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], 1)
    long = Conversation(MULTI_TURN, 2, trainable_turns=[4])
    full_long = len(tokenize_conversation(tokenizer, MULTI_TURN, 10_000)["input_ids"])
    full_short = len(tokenize_conversation(tokenizer, short.messages, 10_000)["input_ids"])
    limit = full_long - 5  # cuts the last assistant turn's final tokens
    stats = token_statistics(tokenizer, [short, long], max_seq_length=limit)
    trained_long = sum(len(r) for r in labelled_runs(tokenize_conversation(tokenizer, MULTI_TURN, limit, [4])))
    trained_short = sum(len(r) for r in labelled_runs(tokenize_conversation(tokenizer, short.messages, limit)))
    assert stats["conversations"] == 2
    assert stats["total_tokens"] == full_short + limit
    assert stats["trainable_tokens"] == trained_short + trained_long
    assert stats["max_length"] == full_long and stats["p95_length"] == full_long
    assert stats["p50_length"] == full_short
    assert stats["mean_length"] == (full_long + full_short) / 2
    assert stats["truncated"] == 1 and stats["untrainable"] == 0
