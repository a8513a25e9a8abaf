"""Delivers the worker's events to the control plane (docs/worker-contract.md, "Events").

`Reporter.emit()` runs on the training thread, so it only stamps the event and appends it to an
in-memory list (a few microseconds); it never touches the disk or the network and never raises.
Two daemon threads do the rest:

- the *journal* thread appends new events to `<outbox_dir>/outbox.jsonl` and fsyncs once per
  batch (an fsync per event costs ~200-350 us on ext4, one per batch of 50 ~9 us per event).
  Metrics and heartbeats are gathered for up to JOURNAL_INTERVAL (a crash may lose that much);
  any other event, flush() and close() have the batch written at once. Only persisted events
  are sent, so a restarted worker never reuses a seq that the control plane has already seen;
- the *sender* thread POSTs persisted events one at a time, in seq order, retrying with
  exponential backoff and jitter.

The journal is append-only. Besides events it holds `{"ack": id}` lines (delivered),
`{"drop": id}` lines (discarded by the bounded-queue policy) and `{"last_seq": ...}` lines (the
counter, so it survives compaction). Acks are not fsynced: losing one only means the event is
sent again with the same id, which the control plane treats as a duplicate. The journal is
rewritten (tmp + fsync + rename) at start-up, which also discards a line torn by a crash, and
whenever it holds many more lines than pending events.

One outbox directory belongs to one Reporter at a time.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from gpu_worker import signing
from gpu_worker.contract import EventType

logger = logging.getLogger("gpu_worker.reporting")

JOURNAL_NAME = "outbox.jsonl"
# Dropped first when the outbox is full: a later point or heartbeat supersedes them.
LOW_VALUE_TYPES = frozenset({EventType.METRICS, EventType.HEARTBEAT})
# Never dropped: the control plane cannot reconstruct the job's outcome without them.
CRITICAL_TYPES = frozenset({EventType.COMPLETED, EventType.ERROR, EventType.CHECKPOINT_SAVED,
                            EventType.INTERRUPTED})
# Rewrite the journal once it holds this many lines more than there are pending events.
COMPACT_SLACK = 2000
# How long metrics and heartbeats may wait in memory before the journal thread writes them (a
# crash may lose that much); any other event, flush() and close() have them written at once.
JOURNAL_INTERVAL = 0.2


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _dumps(event: dict[str, Any]) -> str:
    """Serialise an event; data that JSON cannot hold is replaced rather than lost with it."""
    try:
        return json.dumps(event, default=str)
    except (TypeError, ValueError) as exc:  # e.g. a circular reference
        logger.error("%s event data is not serialisable (%s); sending its repr", event["type"], exc)
        event["data"] = {"unserializable": repr(event["data"])[:2000]}
        return json.dumps(event, default=str)


def _fsync_dir(path: Path) -> None:
    # Makes a rename durable; not every platform lets you open a directory.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# What a cancelled job still takes from its current attempt (training.services.ingest's fence
# accepts these after a cancel): the checkpoint saved as the worker stops, and that it stopped.
LAST_WORDS = frozenset({"checkpoint_saved", "interrupted"})


class Reporter:
    """Stamps, persists and delivers events; see the module docstring for the design.

    `stop_requested` turns True once the control plane answered 409 or 410 for one of this
    attempt's events (cancelled or superseded); the training loop checks it each step.

    A 410 means the job was cancelled: the control plane still takes this attempt's last words
    (LAST_WORDS: the checkpoint it saves as it stops, and that it stopped), so `cancelled` turns
    True and the sender goes on delivering those, and only those. A 409 (finished, superseded)
    wants nothing more at all.
    """

    def __init__(self, *, job_id: str, attempt: int, webhook_url: str | None, secret: str | None,
                 outbox_dir: str | Path, max_queue: int = 10000, timeout: float = 10.0,
                 backoff_initial: float = 0.5, backoff_max: float = 30.0) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.webhook_url = webhook_url
        self.secret = secret or ""
        self.outbox_dir = Path(outbox_dir)
        self.max_queue = max(1, max_queue)
        self.timeout = timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max

        # One lock, one condition per waiter, so that an emit does not wake the sender from
        # its backoff or the journal thread for every metrics point.
        self._lock = threading.RLock()  # re-entrant: a signal handler may emit mid-emit
        self._journal_wakeup = threading.Condition(self._lock)
        self._sender_wakeup = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)  # flush() waits on it
        self._urgent = False  # write the journal now rather than at the next JOURNAL_INTERVAL
        self._journal_idle = False  # the journal thread waits for work (not gathering a batch)
        self._incoming: list[dict[str, Any]] = []   # emitted, not yet in the journal
        self._pending: deque[dict[str, Any]] = deque()  # in the journal, not yet acked
        self._journal_notes: list[dict[str, str]] = []   # ack/drop lines to append
        self._inflight: dict[str, Any] | None = None
        self._writing = 0  # events the journal thread has taken but not yet moved to _pending
        self._closing = False
        self._stop_reason: str | None = None
        self._cancelled = False  # answered 410: only LAST_WORDS are still delivered
        self._threads: list[threading.Thread] = []
        self._journal_file: Any = None
        self._journal_lines = 0
        self.dropped = 0
        self.rejected = 0  # answered 4xx: malformed or unknown, never retried

        self._enabled = bool(webhook_url)
        self._seq = 0
        self._last_seqs: dict[str, int] = {}  # "job:attempt" -> highest seq in the journal
        if self._enabled:
            try:
                self._recover()
            except OSError:
                # Reporting must not stop training: deliver from memory, without durability.
                logger.exception("cannot use the event outbox %s; events kept in memory only",
                                 self.outbox_dir)

    # ----- public API -----

    @property
    def stop_requested(self) -> bool:
        return self._stop_reason is not None

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    @property
    def cancelled(self) -> bool:
        """The job was cancelled (410): stop as on SIGTERM, checkpointing the last completed step."""
        return self._cancelled

    def _accepts(self, type: str) -> bool:
        return self._stop_reason is None or (self._cancelled and type in LAST_WORDS)

    @property
    def pending_count(self) -> int:
        """Events not yet delivered (in memory or in the journal)."""
        with self._lock:
            return len(self._incoming) + self._writing + len(self._pending)

    def start(self) -> None:
        if not self._enabled or self._threads:
            return
        for name, target in (("journal", self._journal_loop), ("sender", self._send_loop)):
            thread = threading.Thread(target=target, name=f"gpu-worker-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def emit(self, type: EventType | str, data: dict) -> str:
        """Queue one event and return its id. Never blocks on I/O and never raises."""
        event_id = f"evt_{uuid.uuid4().hex}"
        try:
            with self._lock:
                self._seq += 1
                # A plain str in the event: the journal and the wire carry the name only.
                event = {"id": event_id, "type": str(type), "job_id": self.job_id,
                         "attempt": self.attempt, "seq": self._seq, "timestamp": _now_iso(),
                         "data": data}
                if not self._enabled or not self._accepts(event["type"]) or self._closing:
                    # Nowhere to send it, or the control plane said it wants nothing more.
                    return event_id
                self._incoming.append(event)
                self._enforce_bound()
                self._wake_journal(urgent=type not in LOW_VALUE_TYPES)
        except Exception:  # reporting must never take training down
            logger.exception("could not queue %s event", type)
        return event_id

    def flush(self, timeout: float) -> bool:
        """Wait until every event is delivered (or stop was requested); True if drained."""
        if not self._enabled:
            return True
        deadline = time.monotonic() + timeout
        with self._lock:
            self._wake_journal(urgent=True)
            while self._incoming or self._writing or self._pending or self._inflight is not None:
                if self._stop_reason is not None and not self._cancelled:
                    break
                if not self._threads:
                    return False  # not started: nothing will ever drain it
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(remaining)
            return True

    def close(self, timeout: float = 10.0) -> None:
        """Flush for up to `timeout` seconds, then stop; undelivered events stay in the outbox."""
        if not self._enabled:
            return
        drained = self.flush(timeout)
        with self._lock:
            self._closing = True
            self._notify_all()
        for thread in self._threads:
            # The journal thread persists what is left before it exits; the sender may be
            # stuck in a POST (daemon thread, harmless).
            thread.join(timeout=max(1.0, self.timeout) if thread.name.endswith("journal") else 1.0)
        if not self._threads:
            self._write_journal_batch()  # never started: still keep what was emitted
        self._threads = []
        if self._journal_file is not None:
            self._journal_file.close()
            self._journal_file = None
        if not drained:
            logger.warning("reporter closed with %d undelivered event(s) left in %s",
                           self.pending_count, self.outbox_dir)

    def _wake_journal(self, urgent: bool = False) -> None:
        """Have the journal thread write soon (urgent: now). Caller holds the lock."""
        # Notifying a thread that is already gathering a batch would only cost a context switch.
        if urgent:
            self._urgent = True
            self._journal_wakeup.notify()
        elif self._journal_idle:
            self._journal_wakeup.notify()

    def _notify_all(self) -> None:
        for condition in (self._journal_wakeup, self._sender_wakeup, self._progress):
            condition.notify_all()

    # ----- queue policy -----

    def _enforce_bound(self) -> None:
        """Drop events until the queue fits in max_queue (caller holds the lock)."""
        # The journal thread's batch in hand counts too: it lands in _pending right after.
        while len(self._incoming) + len(self._pending) + self._writing > self.max_queue:
            if not self._drop_one():
                return  # only critical events left: keep them all, over the bound

    def _drop_one(self) -> bool:
        """Drop the oldest low-value event (metrics/heartbeat, then other non-critical ones)."""
        for allowed in (LOW_VALUE_TYPES, None):
            for queue, persisted in ((self._pending, True), (self._incoming, False)):
                for index, event in enumerate(queue):
                    kind = event["type"]
                    if kind in CRITICAL_TYPES or (allowed is not None and kind not in allowed):
                        continue
                    del queue[index]
                    if persisted:
                        self._journal_notes.append({"drop": event["id"]})
                        self._wake_journal()
                    self.dropped += 1
                    if self.dropped == 1 or self.dropped % 1000 == 0:
                        logger.warning("outbox full (%d): dropped %d event(s) so far",
                                       self.max_queue, self.dropped)
                    return True
        return False

    # ----- journal -----

    def _journal_path(self) -> Path:
        return self.outbox_dir / JOURNAL_NAME

    def _seq_key(self) -> str:
        return f"{self.job_id}:{self.attempt}"

    def _recover(self) -> None:
        """Load undelivered events and the seq counters left by a previous process."""
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        events: dict[str, dict[str, Any]] = {}
        done: set[str] = set()  # ids: seq alone is unique only within one attempt
        path = self._journal_path()
        if path.exists():
            with path.open("r", encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # a line torn by a crash
                    if not isinstance(record, dict):
                        continue
                    if "last_seq" in record:
                        for key, value in record["last_seq"].items():
                            self._last_seqs[key] = max(self._last_seqs.get(key, 0), int(value))
                    elif "ack" in record:
                        done.add(record["ack"])
                    elif "drop" in record:
                        done.add(record["drop"])
                    elif "seq" in record and "id" in record:
                        events[record["id"]] = record
                        key = f"{record.get('job_id')}:{record.get('attempt')}"
                        self._last_seqs[key] = max(self._last_seqs.get(key, 0), record["seq"])
        # seq is unique per attempt; leftovers from another attempt keep their own numbers.
        leftovers = sorted((e for i, e in events.items() if i not in done),
                           key=lambda e: (e.get("attempt", 0), e["seq"]))
        self._pending.extend(leftovers)
        self._seq = self._last_seqs.get(self._seq_key(), 0)
        if leftovers:
            logger.info("outbox holds %d undelivered event(s) from a previous run; sending first",
                        len(leftovers))
        self._compact()

    def _compact(self) -> None:
        """Rewrite the journal as counters + pending events (atomic: tmp, fsync, rename)."""
        path = self._journal_path()
        tmp = path.with_suffix(".tmp")
        with self._lock:
            snapshot = list(self._pending)
            self._last_seqs[self._seq_key()] = max(self._last_seqs.get(self._seq_key(), 0),
                                                   self._persisted_seq())
            counters = dict(self._last_seqs)
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(json.dumps({"last_seq": counters}) + "\n")
            for event in snapshot:
                handle.write(json.dumps(event, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if self._journal_file is not None:
            self._journal_file.close()
        os.replace(tmp, path)
        _fsync_dir(self.outbox_dir)
        self._journal_file = path.open("a", encoding="utf-8")
        self._journal_lines = 1 + len(snapshot)

    def _persisted_seq(self) -> int:
        """The highest seq of this attempt known to be in the journal (caller holds the lock)."""
        mine = [e["seq"] for e in self._pending
                if e.get("attempt") == self.attempt and e.get("job_id") == self.job_id]
        return max(mine, default=self._last_seqs.get(self._seq_key(), 0))

    def _write_journal_batch(self) -> bool:
        """Persist what emit() queued; move it to pending. Returns False if there was nothing."""
        with self._lock:
            batch, self._incoming = self._incoming, []
            notes, self._journal_notes = self._journal_notes, []
            self._writing = len(batch)
        if not batch and not notes:
            return False
        try:
            lines = [json.dumps(n) for n in notes] + [_dumps(e) for e in batch]
            if self._journal_file is not None:  # None: unusable outbox, already logged
                self._journal_file.write("\n".join(lines) + "\n")
                self._journal_file.flush()
                if batch:
                    os.fsync(self._journal_file.fileno())
                self._journal_lines += len(lines)
        except Exception:
            # Disk full or similar: still deliver from memory rather than lose them.
            logger.exception("could not write the event outbox; events kept in memory only")
        finally:
            with self._lock:
                if batch:
                    self._last_seqs[self._seq_key()] = max(
                        self._last_seqs.get(self._seq_key(), 0), batch[-1]["seq"])
                self._pending.extend(batch)
                self._writing = 0
                self._sender_wakeup.notify()
                self._progress.notify_all()
                needs_compaction = (self._journal_file is not None
                                    and self._journal_lines > len(self._pending) + COMPACT_SLACK)
        if needs_compaction:
            try:
                self._compact()
            except OSError:
                logger.exception("could not compact the event outbox")
        return True

    def _journal_loop(self) -> None:
        while True:
            with self._lock:
                self._journal_idle = True
                while not (self._incoming or self._journal_notes or self._closing):
                    self._journal_wakeup.wait()
                self._journal_idle = False
                # Gather a batch: one write and one fsync per interval, not one per event.
                deadline = time.monotonic() + JOURNAL_INTERVAL
                while not (self._urgent or self._closing) and \
                        (remaining := deadline - time.monotonic()) > 0:
                    self._journal_wakeup.wait(remaining)
                self._urgent = False
                closing = self._closing
            try:
                self._write_journal_batch()
            except Exception:
                logger.exception("event journal failed")
            if closing:
                self._write_journal_batch()  # anything queued while we were writing
                return

    # ----- sender -----

    def _next_event(self) -> dict[str, Any] | None:
        with self._lock:
            while True:
                while not self._pending and not self._closing and (self._stop_reason is None or self._cancelled):
                    self._sender_wakeup.wait()
                if self._closing or (self._stop_reason is not None and not self._cancelled):
                    return None
                event = self._pending[0]
                if self._accepts(event["type"]):
                    self._inflight = event
                    return event
                # Queued before the cancel was known: the control plane wants only last words now.
                self._pending.popleft()
                self._journal_notes.append({"drop": event["id"]})
                self._wake_journal()

    def _finish(self, event: dict[str, Any], note: str) -> None:
        """Remove a delivered (or undeliverable) event from the queue."""
        with self._lock:
            if self._pending and self._pending[0] is event:
                self._pending.popleft()
                self._journal_notes.append({note: event["id"]})
                self._wake_journal()
            self._inflight = None
            self._progress.notify_all()

    def _request_stop(self, event: dict[str, Any], status: int) -> None:
        reason = ("cancelled or superseded: the control plane answered "
                  f"{status} to {event['type']} seq {event['seq']}")
        logger.warning("stopping: %s", reason)
        with self._lock:
            self._stop_reason = reason
            self._cancelled = status == 410
            dropped = [e for e in list(self._pending) + self._incoming if not self._accepts(e["type"])]
            self._pending = deque(e for e in self._pending if self._accepts(e["type"]))
            self._incoming = [e for e in self._incoming if self._accepts(e["type"])]
            # The control plane wants nothing more from this attempt, now or after a restart.
            self._journal_notes.extend({"drop": e["id"]} for e in dropped)
            self._inflight = None
            self._notify_all()

    def _send_loop(self) -> None:
        session = requests.Session()
        failures = 0
        while True:
            event = self._next_event()
            if event is None:
                session.close()
                return
            status = self._post(session, event)
            if status is not None and 200 <= status < 300:
                failures = 0
                self._finish(event, "ack")
                continue
            if status in (409, 410):
                if (event.get("job_id") == self.job_id and event.get("attempt") == self.attempt
                        and self._stop_reason is None):
                    self._request_stop(event, status)
                    if self._cancelled:
                        self._finish(event, "drop")
                        continue  # to deliver the last words
                    session.close()
                    return
                # A leftover from an older attempt that has been superseded: just discard it.
                self._finish(event, "drop")
                continue
            if status is not None and 400 <= status < 500 and status not in (408, 429):
                logger.error("control plane rejected %s event %s with %d; dropping it",
                             event["type"], event["id"], status)
                self.rejected += 1
                self._finish(event, "drop")
                continue
            failures += 1
            delay = min(self.backoff_max, self.backoff_initial * 2 ** (failures - 1))
            delay *= random.uniform(0.5, 1.0)
            deadline = time.monotonic() + delay
            with self._lock:
                self._inflight = None
                self._progress.notify_all()
                # Only closing cuts the wait short: new events must queue behind this one anyway.
                while not self._closing and (remaining := deadline - time.monotonic()) > 0:
                    self._sender_wakeup.wait(remaining)

    def _post(self, session: requests.Session, event: dict[str, Any]) -> int | None:
        body = json.dumps(event, separators=(",", ":"), default=str).encode()
        headers = signing.signed_headers(self.secret, body, msg_id=event["id"])
        headers["content-type"] = "application/json"
        try:
            response = session.post(self.webhook_url, data=body, headers=headers,
                                    timeout=self.timeout)
        except requests.RequestException as exc:
            logger.info("could not deliver %s seq %d: %s", event["type"], event["seq"], exc)
            return None
        response.close()
        if not 200 <= response.status_code < 300:
            logger.info("control plane answered %d to %s seq %d", response.status_code,
                        event["type"], event["seq"])
        return response.status_code
