"""gpu_worker.data streaming: records read one at a time (JSONL lines, JSON array elements over a
sliding buffer), problems always structured and at the right line, bounded stored reasons,
token-length percentiles from a histogram."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpu_worker import data
from gpu_worker.data import DatasetError, load_dataset_file, scan_dataset

GOOD = {"prompt": "a", "completion": "b"}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("line", "kind"), [("[1, 2]", "array"), ('"text"', "string"), ("42", "number"), ("null", "null")],
)
@pytest.mark.parametrize("at", [1, 3])
def test_a_line_that_is_not_an_object_is_reported_at_its_line_with_its_kind(tmp_path, line, kind, at):
    lines = [json.dumps(GOOD)] * 4
    lines.insert(at - 1, line)
    report = load_dataset_file(write_lines(tmp_path / "d.jsonl", lines))
    assert [(p.line, p.field, p.reason) for p in report.problems] == [
        (at, "", f"record must be a JSON object (got {kind})")
    ]
    assert report.records == 5 and len(report.conversations) == 4


def test_a_file_of_nothing_but_non_objects_names_the_first_bad_line(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", ["[1, 2]", "42", '"x"'])
    with pytest.raises(DatasetError) as caught:
        load_dataset_file(path)
    assert [(p.line, p.reason) for p in caught.value.problems] == [
        (1, "record must be a JSON object (got array)"),
        (2, "record must be a JSON object (got number)"),
        (3, "record must be a JSON object (got string)"),
    ]
    assert "line 1" in caught.value.message


@pytest.mark.parametrize(
    ("filename", "content", "line"),
    [
        ("d.jsonl", b"", 1),
        ("d.jsonl", b'{"prompt": "a", "completion": "b"}\n{"prompt": "\xff"}\n', 2),
        ("d.json", b'[\n  {"prompt": "a", "completion": "b"},\n  {"prompt": "a" "completion": "b"}\n]\n', 3),
        ("d.json", b'[{"prompt": "a", "completion": "b"}', 1),
        ("d.json", b"[]", 1),
        ("d.json", json.dumps({"data": [GOOD]}, indent=2).encode(), 1),
        ("d.jsonl", b'{"question": "q"}\n{"question": "r"}\n', 1),
    ],
)
def test_every_whole_file_error_carries_a_structured_problem_with_its_line(tmp_path, filename, content, line):
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(DatasetError) as caught:
        load_dataset_file(path)
    problems = caught.value.problems
    assert problems and problems[0].line == line and problems[0].reason
    assert caught.value.problem_count >= 1


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(
        st.fixed_dictionaries({"prompt": st.text(min_size=1, max_size=30).filter(str.strip),
                               "completion": st.text(min_size=1, max_size=30).filter(str.strip)}),
        min_size=1, max_size=12,
    ),
    indent=st.sampled_from([None, 0, 2]),
    chunk=st.integers(min_value=1, max_value=64),
)
def test_a_json_array_streamed_in_tiny_chunks_reads_like_the_whole_text(records, indent, chunk):
    """Any chunk size gives the same records at the same lines as decoding the whole text."""
    text = json.dumps(records, indent=indent, ensure_ascii=False)
    original = data.CHUNK_BYTES
    data.CHUNK_BYTES = chunk
    try:
        seen: list[data.Conversation] = []
        scan = scan_dataset(io.BytesIO(text.encode()), name="d.json", on_conversation=seen.append)
    finally:
        data.CHUNK_BYTES = original
    assert scan.records == len(records) and scan.problem_count == 0
    assert [c.messages[0]["content"] for c in seen] == [r["prompt"] for r in records]
    decoder, starts, pos = json.JSONDecoder(), [], text.index("[") + 1
    for _ in records:
        while text[pos] in " \n,":
            pos += 1
        starts.append(text.count("\n", 0, pos) + 1)
        _, pos = decoder.raw_decode(text, pos)
    assert [c.line for c in seen] == starts


def test_a_jsonl_file_opening_with_an_array_line_is_jsonl_not_a_json_array(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", ["[1, 2]", json.dumps(GOOD), json.dumps(GOOD)])
    report = load_dataset_file(path)
    assert [str(p) for p in report.problems] == ["line 1: record must be a JSON object (got array)"]
    assert len(report.conversations) == 2


def test_progress_is_reported_in_records_and_bytes(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [json.dumps(GOOD)] * 2500)
    calls: list[tuple[int, int]] = []
    scan = scan_dataset(path, on_progress=lambda records, read: calls.append((records, read)))
    assert [c[0] for c in calls] == [1000, 2000, 2500]
    assert calls[-1][1] == path.stat().st_size == scan.bytes_read


def test_a_stored_reason_quotes_a_bounded_excerpt_of_the_record(tmp_path):
    record = {"messages": [{"role": "x" * 100_000, "content": "a"}, {"role": "assistant", "content": "b"}]}
    report = load_dataset_file(write_lines(tmp_path / "d.jsonl", [json.dumps(record)]))
    assert report.problems[0].field == "messages[0].role"
    assert len(report.problems[0].reason) <= data.MAX_REASON_CHARS


def test_scan_keeps_no_conversations(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [json.dumps(GOOD)] * 10)
    scan = scan_dataset(path)
    assert (scan.records, scan.conversations, scan.problem_count) == (10, 10, 0)
    assert not hasattr(scan, "problems_list") and isinstance(scan, data.DatasetScan)


def nearest_rank(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)), 1) - 1]


@given(values=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=300),
       q=st.sampled_from([1, 50, 95, 99, 100]))
def test_the_histogram_percentile_is_the_exact_nearest_rank(values, q):
    from collections import Counter

    assert data._percentile(Counter(values), len(values), q) == nearest_rank(values, q)


@settings(max_examples=25, deadline=None)
@given(words=st.lists(st.sampled_from(["Hello", "world,", "123", "naïve", "café!", "it's", "<b>", "x2", "4.5",
                                       "\n", "  ", "don't", "A"]), min_size=50, max_size=2000),
       segment=st.integers(min_value=5, max_value=400))
def test_counting_tokens_in_pieces_equals_counting_the_whole(tokenizer, words, segment):
    text = " ".join(words)
    original = data._SEGMENT_CHARS
    data._SEGMENT_CHARS = segment
    try:
        assert data.count_tokens_in_pieces(tokenizer, text) == len(tokenizer(text, add_special_tokens=False)["input_ids"])
    finally:
        data._SEGMENT_CHARS = original


def test_a_very_long_conversation_gets_the_same_statistics_in_bounded_pieces(tokenizer, monkeypatch):
    from gpu_worker.data import Conversation, token_statistics

    answer = " ".join(["the refund is on its way, 42 days at most"] * 400)
    long = Conversation([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "When?"},
                         {"role": "assistant", "content": answer}], 1)
    exact = token_statistics(tokenizer, [long], max_seq_length=256)
    monkeypatch.setattr(data, "LONG_CONVERSATION_CHARS", 4000)
    monkeypatch.setattr(data, "_SEGMENT_CHARS", 1000)
    assert token_statistics(tokenizer, [long], max_seq_length=256) == exact
    assert exact["max_length"] > 4000 // 8 and exact["truncated"] == 1


def reference_spans(tokenizer, messages, trainable_turns=None):
    """The previous assistant_spans (every rendering tokenised whole, one call each)."""
    def render(msgs, gen):
        text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    def common(a, b):
        n = 0
        for x, y in zip(a, b, strict=False):
            if x != y:
                break
            n += 1
        return n

    full = render(messages, False)
    assistant = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    turns = assistant if trainable_turns is None else sorted(set(trainable_turns) & set(assistant))
    spans = []
    for i in turns:
        start = common(full, render(messages[:i], True)) if i > 0 else 0
        start = max(start, common(full, render([*messages[:i], {"role": "assistant", "content": ""}], False)))
        end = len(full) if i == len(messages) - 1 else common(full, render(messages[: i + 1], False))
        if end <= start and tokenizer.eos_token_id is not None:
            end = next((j + 1 for j in range(start, len(full)) if full[j] == tokenizer.eos_token_id), len(full))
        while end > start and not tokenizer.decode([full[end - 1]]).strip():
            end -= 1
        spans.append((start, end))
    return full, spans


contents = st.lists(st.sampled_from([*"ab é\n\t<|>_12.!", "<|im_end|>", "<|im_start|>", " the", "\n\n"]),
                    min_size=1, max_size=25).map("".join).filter(str.strip)
turns = st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), contents), min_size=1, max_size=6)


@settings(max_examples=80, deadline=None)
@given(conversations=st.lists(turns, min_size=1, max_size=4))
def test_batched_spans_equal_the_previous_one_rendering_at_a_time(tokenizer, conversations):
    batch = [([{"role": r, "content": c} for r, c in conv], None) for conv in conversations]
    assert data.assistant_spans_batch(tokenizer, batch) == [reference_spans(tokenizer, m) for m, _ in batch]
