"""ingest_training_file: hash, store once, validate every record, count tokens."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from training.models import TrainingFile
from training.services import datasets
from training.services.datasets import ingest_training_file

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def stored_files(media: Path) -> list[Path]:
    return sorted(p for p in media.rglob("*") if p.is_file()) if media.exists() else []


def jsonl(*records) -> bytes:
    return "\n".join(json.dumps(r) for r in records).encode() + b"\n"


CHAT = jsonl(
    {"messages": [{"role": "system", "content": "You are Elena."}, {"role": "user", "content": "Hi there"},
                  {"role": "assistant", "content": "Hello! How are you feeling today?"}]},
    {"messages": [{"role": "user", "content": "I'm tired."},
                  {"role": "assistant", "content": "That sounds hard. What has been draining you?"}]},
)
PAIRS = json.dumps([
    {"system_prompt": "You are Elena.", "conversation_history": [{"role": "user", "content": "Hi"},
                                                                  {"role": "assistant", "content": "Hello!"}],
     "current_user_input": "Can you help?", "target_response": "Of course. Tell me more."},
    {"current_user_input": "Thanks", "target_response": "Any time."},
], indent=2).encode()
PROMPT_COMPLETION = jsonl({"prompt": "Say hi", "completion": "Hi!"}, {"prompt": "Count to 3", "completion": "1 2 3"})


@pytest.mark.parametrize(
    ("filename", "content", "fmt"),
    [("chat.jsonl", CHAT, "messages"), ("pairs.json", PAIRS, "training_pairs"),
     ("pc.jsonl", PROMPT_COMPLETION, "prompt_completion")],
)
def test_each_format_is_detected_validated_and_counted(filename, content, fmt, staff, media):
    tf = ingest_training_file(uploaded=SimpleUploadedFile(filename, content), user=staff)
    tf.refresh_from_db()
    assert tf.format == fmt
    assert tf.validation_status == TrainingFile.ValidationStatus.VALID and tf.is_trainable
    assert tf.record_count == 2 and tf.problem_count == 0
    assert tf.validation_report["problems"] == []
    assert "2 records" in tf.validation_report["message"]
    assert tf.token_stats["conversations"] == 2
    assert 0 < tf.token_stats["trainable_tokens"] < tf.token_stats["total_tokens"]
    assert tf.token_stats["max_seq_length"] == 2048
    assert tf.token_stats_model == "SmolLM2-135M-Instruct"
    sha = hashlib.sha256(content).hexdigest()
    ext = Path(filename).suffix
    assert (tf.sha256, tf.size_bytes, tf.file.name) == (sha, len(content), f"datasets/{sha}{ext}")
    assert tf.name == Path(filename).stem and tf.created_by == staff
    assert (media / "datasets" / f"{sha}{ext}").read_bytes() == content


def test_a_filesystem_path_is_accepted(tmp_path, media):
    source = tmp_path / "from-disk.jsonl"
    source.write_bytes(CHAT)
    tf = ingest_training_file(uploaded=source, name="From disk")
    assert tf.name == "From disk" and tf.is_trainable
    assert tf.sha256 == hashlib.sha256(CHAT).hexdigest()


def test_the_same_upload_again_is_the_same_record(staff, media):
    first = ingest_training_file(uploaded=SimpleUploadedFile("a.jsonl", CHAT), user=staff)
    again = ingest_training_file(uploaded=SimpleUploadedFile("a.jsonl", CHAT), user=staff)
    assert again.pk == first.pk
    assert (first.was_duplicate, again.was_duplicate) == (False, True)
    assert TrainingFile.objects.count() == 1
    assert len(stored_files(media)) == 1


def test_the_same_bytes_under_a_new_name_keep_the_new_name_over_one_stored_copy(staff, media):
    first = ingest_training_file(uploaded=SimpleUploadedFile("a.jsonl", CHAT), user=staff)
    renamed = ingest_training_file(uploaded=SimpleUploadedFile("renamed.jsonl", CHAT), name="Another name", user=staff)
    assert renamed.pk != first.pk and (first.name, renamed.name) == ("a", "Another name")
    assert renamed.was_duplicate is False and renamed.is_trainable
    assert renamed.blob_id == first.blob_id and len(stored_files(media)) == 1
    first.refresh_from_db()
    assert first.name == "a"


def test_an_invalid_file_is_stored_as_invalid_with_each_problem_by_line_and_field(media):
    content = jsonl(
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]},
        {"messages": [{"role": "robot", "content": "beep"}, {"role": "assistant", "content": "ok"}]},
    ) + b"{not json\n"
    tf = ingest_training_file(uploaded=SimpleUploadedFile("bad.jsonl", content))
    tf.refresh_from_db()
    assert tf.validation_status == TrainingFile.ValidationStatus.INVALID and not tf.is_trainable
    assert tf.format == "messages" and tf.record_count == 4 and tf.problem_count == 3
    problems = {(p["line"], p["field"]) for p in tf.validation_report["problems"]}
    assert problems == {(2, "messages[1].content"), (3, "messages[0].role"), (4, "")}
    assert tf.report_lines()[0] == "line 2: messages[1].content is empty"
    message = tf.validation_report["message"]
    assert message.startswith("3 problems in 3 of 4 records") and "upload the file again" in message
    assert len(stored_files(media)) == 1  # kept, so the report can be read next to the file


def test_a_file_that_is_not_json_at_all_is_invalid_and_names_the_upload_not_a_temp_path(media):
    tf = ingest_training_file(uploaded=SimpleUploadedFile("notes.json", b'[{"prompt": "a", "completion": "b"},'))
    assert tf.validation_status == TrainingFile.ValidationStatus.INVALID
    assert tf.problem_count >= 1 and tf.record_count == 0
    message = tf.validation_report["message"]
    assert message.startswith("notes.json: ") and "/tmp" not in message


@pytest.mark.parametrize("filename", ["data.csv", "data.txt", "data", "data.json.gz"])
def test_a_name_that_is_not_json_or_jsonl_is_refused_and_nothing_is_stored(filename, media):
    with pytest.raises(ValidationError) as caught:
        ingest_training_file(uploaded=SimpleUploadedFile(filename, CHAT))
    assert "must be .json or .jsonl" in " ".join(caught.value.messages)
    assert TrainingFile.objects.count() == 0 and stored_files(media) == []


def test_a_failed_insert_leaves_no_file_behind(monkeypatch, media):
    def fail(self, *args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(TrainingFile, "save", fail)
    with pytest.raises(RuntimeError):
        ingest_training_file(uploaded=SimpleUploadedFile("chat.jsonl", CHAT))
    monkeypatch.undo()
    assert TrainingFile.objects.count() == 0
    assert stored_files(media) == []


def test_bytes_already_in_storage_are_reused_not_copied(media):
    sha = hashlib.sha256(CHAT).hexdigest()
    (media / "datasets").mkdir(parents=True)
    (media / "datasets" / f"{sha}.jsonl").write_bytes(CHAT)  # a row deleted, its file left
    tf = ingest_training_file(uploaded=SimpleUploadedFile("chat.jsonl", CHAT))
    assert tf.file.name == f"datasets/{sha}.jsonl"
    assert len(stored_files(media)) == 1


def test_without_a_tokenizer_tokens_are_estimated_from_characters(monkeypatch, media):
    def broken():
        raise OSError("tokenizer files missing")

    monkeypatch.setattr(datasets, "embedded_tokenizer", broken)
    tf = ingest_training_file(uploaded=SimpleUploadedFile("pc.jsonl", PROMPT_COMPLETION))
    assert tf.is_trainable
    assert "tokenizer files missing" in tf.token_stats["error"]
    assert tf.token_stats["estimated_total_tokens"] == len("Say hiHi!Count to 31 2 3") // 4
    assert tf.token_stats_model == "characters/4"
