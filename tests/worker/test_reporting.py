"""Reporter: signed, ordered, durable delivery of events to the control plane."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpu_worker import signing
from gpu_worker.reporting import JOURNAL_NAME, Reporter

from .receiver import Receiver


@pytest.fixture
def rx(tmp_path: Path) -> Iterator[Receiver]:
    with Receiver(tmp_path / "receiver") as receiver:
        yield receiver


def make_reporter(rx: Receiver, outbox: Path, **kwargs) -> Reporter:
    # Millisecond backoff keeps outage tests fast; the production default is 0.5 s → 30 s.
    options = {"backoff_initial": 0.005, "backoff_max": 0.05, "timeout": 5.0}
    options.update(kwargs)
    return Reporter(job_id="job-1", attempt=1, webhook_url=rx.events_url, secret=rx.secret,
                    outbox_dir=outbox, **options)


def test_it_delivers_signed_events_in_seq_order(rx: Receiver, tmp_path: Path) -> None:
    reporter = make_reporter(rx, tmp_path / "outbox")
    reporter.start()
    ids = [reporter.emit("metrics", {"points": [{"step": i}]}) for i in range(1, 21)]
    assert reporter.flush(10)
    reporter.close()

    assert rx.bad_signatures == 0
    assert [e["id"] for e in rx.events] == ids
    assert [e["seq"] for e in rx.events] == list(range(1, 21))
    assert rx.webhook_ids == ids  # the header id is the event id: the idempotency key
    first = rx.events[0]
    assert first["type"] == "metrics" and first["job_id"] == "job-1" and first["attempt"] == 1
    assert first["id"].startswith("evt_")
    assert first["timestamp"].endswith("Z") and len(first["timestamp"]) == len("2026-11-23T20:15:03.123Z")


def test_a_wrong_secret_is_refused_by_the_verifier(rx: Receiver) -> None:
    body = json.dumps({"id": "evt_x"}).encode()
    headers = signing.signed_headers("not-the-secret", body, msg_id="evt_x")
    with pytest.raises(signing.SignatureError):
        signing.verify(rx.secret, headers, body)


@pytest.mark.parametrize("failure", [503, None], ids=["503", "connection-closed"])
def test_an_outage_loses_nothing_and_keeps_order(rx: Receiver, tmp_path: Path, failure: int | None) -> None:
    reporter = make_reporter(rx, tmp_path / "outbox")
    reporter.start()
    reporter.emit("started", {"device": "cpu"})
    assert reporter.flush(10)

    rx.down(status=failure)
    started = time.perf_counter()
    for step in range(1000):
        reporter.emit("metrics", {"points": [{"step": step}]})
    elapsed = time.perf_counter() - started
    reporter.emit("checkpoint_saved", {"step": 1000, "key": "checkpoints/step-1000", "size_bytes": 1})
    assert rx.wait_for(lambda: rx.requests >= 3)  # it did retry against the dead receiver
    rx.up()
    assert reporter.flush(20)
    reporter.close()

    # Never blocked on the outage: waiting on the sender even once per event (a round trip plus
    # the >= 5 ms backoff) would take over 5 s for 1000 emits. The bound leaves room for the GIL,
    # shared with the journal and sender threads on a loaded 2-core machine (0.94 s seen in CI).
    assert elapsed < 2.5, f"1000 emits took {elapsed:.3f}s while the receiver was down"
    assert [e["seq"] for e in rx.events] == list(range(1, 1003))
    assert rx.events[-1]["type"] == "checkpoint_saved"


def test_a_slow_receiver_does_not_slow_emit(rx: Receiver, tmp_path: Path) -> None:
    rx.delay = 0.2
    reporter = make_reporter(rx, tmp_path / "outbox")
    reporter.start()
    started = time.perf_counter()
    for step in range(200):
        reporter.emit("heartbeat", {"stage": "training", "step": step, "total_steps": None})
    assert time.perf_counter() - started < 0.2
    reporter.close(timeout=0)


def test_a_restarted_reporter_sends_leftovers_first_with_their_ids(rx: Receiver, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    rx.down()
    first = make_reporter(rx, outbox)
    first.start()
    old_ids = [first.emit("metrics", {"points": [{"step": i}]}) for i in range(5)]
    assert rx.wait_for(lambda: rx.requests >= 1)
    first.close(timeout=0)  # the pod dies with five events undelivered
    assert first.pending_count == 5

    rx.up()
    second = make_reporter(rx, outbox)
    new_id = second.emit("resumed", {"resumed_from_step": 0})
    second.start()
    assert second.flush(10)
    second.close()

    assert [e["id"] for e in rx.events] == [*old_ids, new_id]
    assert [e["seq"] for e in rx.events] == [1, 2, 3, 4, 5, 6]  # the counter survived the restart

    third = make_reporter(rx, outbox)
    assert third.pending_count == 0  # acked events are not sent again
    assert third.emit("heartbeat", {}) and third._seq == 7
    third.close(timeout=0)


def test_events_emitted_before_a_crash_survive_it(rx: Receiver, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    rx.down()
    crashed = make_reporter(rx, outbox)
    crashed.start()
    event_id = crashed.emit("checkpoint_saved", {"step": 10, "key": "checkpoints/step-10", "size_bytes": 3})
    journal = outbox / JOURNAL_NAME
    assert rx.wait_for(lambda: event_id in journal.read_text(), timeout=5)
    crashed.close(timeout=0)  # stands in for the crash: its threads must not race the next one
    # A crash mid-write leaves a torn last line; the next reporter must cope with it.
    with journal.open("a") as handle:
        handle.write('{"id": "evt_torn", "se')

    rx.up()
    restarted = make_reporter(rx, outbox)
    restarted.start()
    assert restarted.flush(10)
    restarted.close()
    assert [e["id"] for e in rx.events][0] == event_id
    assert "evt_torn" not in {e["id"] for e in rx.events}


@pytest.mark.parametrize("status", [409, 410])
def test_409_or_410_requests_a_stop_and_drops_the_rest(rx: Receiver, tmp_path: Path, status: int) -> None:
    outbox = tmp_path / "outbox"
    rx.answer = status
    reporter = make_reporter(rx, outbox)
    reporter.start()
    reporter.emit("metrics", {"points": [{"step": 1}]})
    reporter.emit("metrics", {"points": [{"step": 2}]})
    assert reporter.flush(10)
    assert reporter.stop_requested
    assert str(status) in (reporter.stop_reason or "")
    reporter.emit("heartbeat", {"stage": "training", "step": 3, "total_steps": 10})
    reporter.close()

    assert len(rx.deliveries) == 1  # nothing sent after the refusal
    rx.answer = None
    assert make_reporter(rx, outbox).pending_count == 0  # nor after a restart


def test_after_a_410_only_the_attempts_last_words_are_still_delivered(rx: Receiver, tmp_path: Path) -> None:
    """A 410 is a cancel: the control plane still takes the checkpoint the worker saves as it stops
    and its `interrupted`, and nothing else (training.services.ingest.CANCELLED_LAST_WORDS)."""
    rx.answer, rx.accept_anyway = 410, {"checkpoint_saved", "interrupted"}
    reporter = make_reporter(rx, tmp_path / "outbox")
    reporter.start()
    reporter.emit("heartbeat", {"stage": "training", "step": 3, "total_steps": 10})
    assert rx.wait_for(lambda: reporter.stop_requested)
    assert reporter.cancelled
    reporter.emit("metrics", {"points": [{"step": 4}]})  # not a last word: never sent
    reporter.emit("checkpoint_saved", {"step": 3, "key": "checkpoints/step-3", "size_bytes": 10})
    reporter.emit("interrupted", {"signal": "cancel", "last_checkpoint_step": 3})
    assert reporter.flush(10)  # waits for the last words, not only for the refusal
    reporter.close()
    assert [e["type"] for e in rx.deliveries] == ["heartbeat", "checkpoint_saved", "interrupted"]
    assert [e["type"] for e in rx.events] == ["checkpoint_saved", "interrupted"]


def test_after_a_409_not_even_last_words_are_sent(rx: Receiver, tmp_path: Path) -> None:
    rx.answer = 409
    reporter = make_reporter(rx, tmp_path / "outbox")
    reporter.start()
    reporter.emit("heartbeat", {"stage": "training", "step": 3, "total_steps": 10})
    assert rx.wait_for(lambda: reporter.stop_requested)
    assert not reporter.cancelled
    reporter.emit("interrupted", {"signal": "SIGTERM", "last_checkpoint_step": 3})
    assert reporter.flush(10)
    reporter.close()
    assert [e["type"] for e in rx.deliveries] == ["heartbeat"]


@pytest.mark.parametrize("status", [400, 401, 404, 413, 422])
def test_other_4xx_drop_only_that_event(rx: Receiver, tmp_path: Path, status: int, caplog) -> None:
    # A permanently bad event (a step too big for the database: 400 naming the field) is
    # dropped with a logged error, never retried forever behind the events that follow it.
    rx.fail_next(1, status=status)
    reporter = make_reporter(rx, tmp_path / "outbox")
    reporter.start()
    with caplog.at_level(logging.ERROR, logger="gpu_worker.reporting"):
        reporter.emit("metrics", {"points": [{"step": 1}]})
        reporter.emit("metrics", {"points": [{"step": 2}]})
        assert reporter.flush(10)
    reporter.close()
    assert [e["seq"] for e in rx.events] == [2]
    assert reporter.rejected == 1 and not reporter.stop_requested
    assert rx.requests == 2  # the refused one was sent once
    assert f"with {status}; dropping it" in caplog.text
    rx.answer = None
    assert make_reporter(rx, tmp_path / "outbox").pending_count == 0  # nor resent after a restart


@pytest.mark.parametrize("status", [408, 429, 500])
def test_transient_answers_are_retried(rx: Receiver, tmp_path: Path, status: int) -> None:
    rx.fail_next(3, status=status)
    reporter = make_reporter(rx, tmp_path / "outbox")
    reporter.start()
    reporter.emit("metrics", {"points": [{"step": 1}]})
    assert reporter.flush(10)
    reporter.close()
    assert [e["seq"] for e in rx.events] == [1]
    assert len(rx.deliveries) == 1 and rx.requests == 4


def test_a_full_outbox_drops_oldest_metrics_never_critical_events(rx: Receiver, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    reporter = make_reporter(rx, outbox, max_queue=4)  # never started: deterministic queue
    for kind in ["metrics", "checkpoint_saved", "metrics", "heartbeat"]:
        reporter.emit(kind, {})
    reporter._write_journal_batch()  # what the journal thread does: these four are now on disk
    for kind in ["error", "metrics", "completed", "interrupted", "metrics"]:
        reporter.emit(kind, {})
    reporter.close(timeout=0)
    # The newest metrics point is the only low-value event left when it arrives, so it goes too.
    assert reporter.dropped == 5

    # The drops are in the journal too, so a restarted worker does not resurrect them.
    rx.up()
    restarted = make_reporter(rx, outbox, max_queue=4)
    restarted.start()
    assert restarted.flush(10)
    restarted.close()
    assert [e["type"] for e in rx.events] == ["checkpoint_saved", "error", "completed",
                                               "interrupted"]
    assert [e["seq"] for e in rx.events] == [2, 5, 7, 8]


def test_without_a_webhook_emit_still_works(tmp_path: Path) -> None:
    reporter = Reporter(job_id="job-1", attempt=1, webhook_url=None, secret=None,
                        outbox_dir=tmp_path / "outbox")
    reporter.start()
    ids = {reporter.emit("metrics", {"points": []}) for _ in range(3)}
    assert len(ids) == 3
    assert reporter.flush(1)
    reporter.close()
    assert not reporter.stop_requested


def test_emit_never_raises_on_odd_data(rx: Receiver, tmp_path: Path) -> None:
    reporter = make_reporter(rx, tmp_path / "outbox")
    reporter.start()
    reporter.emit("error", {"error_type": "unknown", "details": {"path": Path("/x"), "obj": object()}})
    assert reporter.flush(10)
    reporter.close()
    assert rx.events[0]["data"]["details"]["path"] == "/x"


def test_a_new_attempt_restarts_seq_and_ignores_a_refusal_of_older_leftovers(rx: Receiver, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    rx.down()
    old = make_reporter(rx, outbox)
    old.start()
    leftover = old.emit("heartbeat", {"stage": "training", "step": 5, "total_steps": 10})
    old.emit("heartbeat", {"stage": "training", "step": 6, "total_steps": 10})
    old.close(timeout=0)

    # The control plane superseded attempt 1, so it refuses its leftovers with 410.
    rx.answer = 410
    rx.up()
    new = Reporter(job_id="job-1", attempt=2, webhook_url=rx.events_url, secret=rx.secret,
                   outbox_dir=outbox, backoff_initial=0.005, backoff_max=0.05)
    new.start()
    assert rx.wait_for(lambda: len(rx.deliveries) == 2)
    assert [e["id"] for e in rx.deliveries][0] == leftover
    assert new.flush(10) and not new.stop_requested
    rx.answer = None
    new.emit("resumed", {"resumed_from_step": 0})
    assert new.flush(10)
    new.close()
    assert [(e["attempt"], e["seq"]) for e in rx.events] == [(2, 1)]


def test_the_journal_is_compacted_and_keeps_the_seq_counter(rx: Receiver, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    reporter = make_reporter(rx, outbox)
    reporter.start()
    for step in range(1500):  # 1500 events + 1500 acks: past the compaction threshold
        reporter.emit("metrics", {"points": [{"step": step}]})
    assert reporter.flush(20)
    reporter.close()
    assert len((outbox / JOURNAL_NAME).read_text().splitlines()) < 1500

    again = make_reporter(rx, outbox)
    assert again.pending_count == 0
    again.start()
    again.emit("heartbeat", {"stage": "training", "step": None, "total_steps": None})
    assert again.flush(10)
    again.close()
    assert [e["seq"] for e in rx.events] == list(range(1, 1502))


def test_leftovers_of_two_attempts_with_the_same_seqs_all_arrive(rx: Receiver, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    rx.down()
    ids = []
    for attempt in (1, 2):
        reporter = Reporter(job_id="job-1", attempt=attempt, webhook_url=rx.events_url,
                            secret=rx.secret, outbox_dir=outbox)
        ids += [reporter.emit("stage_changed", {"stage": "training"}) for _ in range(2)]
        reporter.close(timeout=0)  # never started: everything stays in the outbox
    rx.up()
    last = make_reporter(rx, outbox)
    last.start()
    assert last.flush(10)
    last.close()
    assert [e["id"] for e in rx.events] == ids
    assert [(e["attempt"], e["seq"]) for e in rx.events] == [(1, 1), (1, 2), (2, 1), (2, 2)]
