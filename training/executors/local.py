"""The embedded default executor: `python -m gpu_worker` as a detached subprocess on this machine.

Layout of one attempt, `MEDIA_ROOT/work/<job id>/attempt-<n>/`:

    config.json   the worker configuration (mode 0600: it carries the job's webhook secret)
    worker.pid    the launch claim and, once spawned, the executor ref (JSON)
    worker.log    the worker's stdout and stderr
    worker.exit   the worker's exit code, written by local_supervisor.py when it ends
    output/       the worker's own output_dir

Exit codes: the worker is started through `local_supervisor.py` (stdlib only), which is the
leader of a new session and process group, waits for the worker and writes its exit code to
`worker.exit`. So any process on this host can poll: the supervisor alive means running, an
exit file means exited with that code, neither means gone (SIGKILL, reboot). The launching
process reaps the supervisor from a daemon thread the moment it ends (no defunct process left
behind while the launcher lives on, as a Celery worker or the `train` command does). A shell wrapper
(`sh -c '...; echo $? > file'`) was rejected: sh dies of the same SIGTERM we send the group to
stop the worker cleanly, and the exit code is lost exactly when it matters.

Idempotent launch per (job, attempt): `worker.pid` is created with O_CREAT|O_EXCL before
anything is spawned. Whoever creates it spawns the worker and writes the ref into it; a second
launch for the same attempt (a redelivered Celery task) finds the file and returns the recorded
ref instead of starting another worker, whether that worker is still running or has already
ended (a new worker means a new attempt, which only the services decide). A claim left empty by
a launcher that died before spawning is taken over after CLAIM_TIMEOUT_SECONDS.

Settings read (all optional): WORKER_PYTHON (interpreter for the worker; default this one),
GPU_WORKER_CACHE (passed to the worker's environment), LOCAL_WORKER_COMMAND (a list replacing
`[python, "-m", "gpu_worker"]`; tests point it at a fake worker; `--config FILE` is appended),
LOCAL_WORKER_STOP_GRACE_SECONDS (SIGTERM to SIGKILL delay on cancel, default 30).

Cancel returns as soon as SIGTERM is sent: the supervisor (which gets the same signal) sends
SIGKILL if the worker is still there after the grace period, so neither an API request nor the
`train` command waits on the worker's exit. `wait_stopped` is for the callers that must (the poll
replacing a hung worker with a new attempt).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from .base import EXECUTORS, Executor, ExecutorError, LaunchResult, PodState

if TYPE_CHECKING:
    from training.models import TrainingJob

logger = logging.getLogger(__name__)

SUPERVISOR = Path(__file__).with_name("local_supervisor.py")
CONFIG_FILE = "config.json"
PID_FILE = "worker.pid"
LOG_FILE = "worker.log"
EXIT_FILE = "worker.exit"
CLAIM_TIMEOUT_SECONDS = 10.0


def work_dir(job_id: object, attempt: int) -> Path:
    """The local working directory of one attempt of one job."""
    return Path(settings.MEDIA_ROOT) / "work" / str(job_id) / f"attempt-{attempt}"


def worker_command(config_path: Path) -> list[str]:
    prefix = getattr(settings, "LOCAL_WORKER_COMMAND", None) or [
        settings.WORKER_PYTHON or sys.executable, "-m", "gpu_worker",
    ]
    return [*prefix, "--config", str(config_path)]


def process_status(pid: int, marker: str | None = None) -> str:
    """"alive", "zombie" or "absent" for `pid`; a pid whose command line does not contain
    `marker` (the pid was reused by an unrelated process) counts as absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return "absent"
    state = stat.rsplit(")", 1)[-1].split()[0]
    if state in ("Z", "X"):
        return "zombie"
    if marker and marker not in cmdline:
        return "absent"
    return "alive"


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        # After the comm field: state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def reap(pid: int) -> None:
    """Collect a zombie if it is our child (the launching process); harmless otherwise."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@EXECUTORS.register("local", label="Local process (CPU/GPU on this machine)")
class LocalExecutor(Executor):

    @property
    def stop_grace_seconds(self) -> float:
        return float(getattr(settings, "LOCAL_WORKER_STOP_GRACE_SECONDS", 30))

    # --- launch ---------------------------------------------------------------------------

    def launch(self, job: TrainingJob, worker_config: dict) -> LaunchResult:
        directory = work_dir(job.pk, job.attempt)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExecutorError("infrastructure", f"Cannot create the worker directory {directory}: {exc.strerror}.",
                                "Check that MEDIA_ROOT is writable and the disk is not full.") from exc
        pid_file = directory / PID_FILE
        while True:
            try:
                fd = os.open(pid_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
                break
            except FileExistsError:
                existing = self._existing_launch(pid_file)
                if existing is not None:
                    logger.info("job %s attempt %s already launched (pid %s); not starting another",
                                job.pk, job.attempt, existing.get("pid"))
                    return LaunchResult(ref=existing)
        with os.fdopen(fd, "w") as claim:
            try:
                ref = self._spawn(worker_config, directory)
            except OSError as exc:
                pid_file.unlink(missing_ok=True)
                raise ExecutorError("infrastructure", f"Could not start the local worker: {exc}.",
                                    "Check WORKER_PYTHON and that gpu_worker is installed.") from exc
            claim.write(json.dumps(ref))
            claim.flush()
            os.fsync(claim.fileno())
        return LaunchResult(ref=ref)

    def _existing_launch(self, pid_file: Path) -> dict | None:
        """The ref recorded by an earlier launch of this attempt, or None once a stale empty
        claim has been removed (the caller then claims again)."""
        deadline = time.monotonic() + CLAIM_TIMEOUT_SECONDS
        while True:
            try:
                text = pid_file.read_text()
                age = time.time() - pid_file.stat().st_mtime
            except FileNotFoundError:
                return None
            if text.strip():
                return json.loads(text)
            # Empty: another launcher is spawning right now, or died between claim and spawn.
            if age > CLAIM_TIMEOUT_SECONDS:
                pid_file.unlink(missing_ok=True)
                return None
            if time.monotonic() > deadline:
                raise ExecutorError("infrastructure", f"Another launch of this attempt holds {pid_file} and has not finished.",
                                    "It is retried automatically.", transient=True)
            time.sleep(0.1)

    def _spawn(self, worker_config: dict, directory: Path) -> dict:
        config_path = directory / CONFIG_FILE
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(worker_config, fh, indent=2)
        os.chmod(config_path, 0o600)  # O_CREAT's mode does not apply to an existing file
        exit_path = directory / EXIT_FILE
        exit_path.unlink(missing_ok=True)
        log_path = directory / LOG_FILE
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if settings.GPU_WORKER_CACHE:
            env["GPU_WORKER_CACHE"] = settings.GPU_WORKER_CACHE
        grace = self.stop_grace_seconds
        command = [sys.executable, str(SUPERVISOR), str(exit_path), "--grace", str(grace), "--",
                   *worker_command(config_path)]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                command, cwd=settings.BASE_DIR, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
            )
        # Only the parent can collect the supervisor's exit; without this it stays <defunct>
        # until some later poll happens to reap it.
        threading.Thread(target=proc.wait, name=f"reap-supervisor-{proc.pid}", daemon=True).start()
        return {
            "host": socket.gethostname(),
            "pid": proc.pid,
            "pgid": proc.pid,  # start_new_session: the supervisor leads its own group
            "dir": str(directory),
            "config": str(config_path),
            "log": str(log_path),
            "exit_file": str(exit_path),
            "started": datetime.now(UTC).isoformat(),
            "stop_grace_seconds": grace,  # the supervisor escalates to SIGKILL after this
        }

    def log_tail(self, job: TrainingJob, lines: int = 200) -> list[str] | None:
        path = job.attempt_ref.get("log")
        if not path:
            return None
        return read_tail(Path(path), lines)

    # --- poll -----------------------------------------------------------------------------

    def poll(self, job: TrainingJob) -> PodState:
        ref = job.attempt_ref
        if not ref.get("pid"):
            return PodState("starting", detail="no worker process recorded yet")
        if ref.get("host") != socket.gethostname():
            return PodState("unknown", raw=ref, detail=(
                f"the worker runs on host {ref.get('host')!r} and this is {socket.gethostname()!r}: "
                "a local worker can only be polled from the machine that launched it"))
        runtime = None
        if ref.get("started"):
            runtime = (datetime.now(UTC) - datetime.fromisoformat(ref["started"])).total_seconds()
        status = process_status(ref["pid"], ref.get("config"))
        if status == "zombie":
            reap(ref["pid"])
        if status == "alive":
            return PodState("running", runtime_seconds=runtime, raw=ref, detail=f"pid {ref['pid']}")
        code = read_exit_code(ref)
        if code is not None:
            return PodState("exited", exit_code=code, runtime_seconds=runtime, raw=ref,
                            detail=f"worker exited with code {code}; log: {ref.get('log')}")
        return PodState("gone", runtime_seconds=runtime, raw=ref, detail=(
            f"worker process {ref['pid']} is gone without an exit code (killed with SIGKILL, or the "
            f"machine restarted); log: {ref.get('log')}"))

    # --- cancel ---------------------------------------------------------------------------

    def cancel(self, job: TrainingJob) -> None:
        ref = job.attempt_ref
        if not ref.get("pid"):
            return
        if ref.get("host") != socket.gethostname():
            raise ExecutorError("infrastructure", f"The worker runs on host {ref.get('host')!r}; it can only be stopped there.",
                                "Run the stop from a Celery worker on that host.")
        pid, pgid = ref["pid"], ref.get("pgid", ref["pid"])
        if process_status(pid, ref.get("config")) == "absent" or not group_members(pgid):
            return
        self._signal_group(pgid, signal.SIGTERM)
        if "stop_grace_seconds" in ref:
            return  # its supervisor sends SIGKILL after the grace period, if it comes to that
        # Launched by a supervisor that does not escalate (before an upgrade): escalate here.
        if self._wait_group_gone(pid, pgid, self.stop_grace_seconds):
            return
        logger.warning("worker group %s ignored SIGTERM for %ss; sending SIGKILL", pgid, self.stop_grace_seconds)
        self._signal_group(pgid, signal.SIGKILL)
        self._wait_group_gone(pid, pgid, 5.0)

    def wait_stopped(self, job: TrainingJob, timeout: float | None = None) -> bool:
        ref = job.attempt_ref
        if not ref.get("pid") or ref.get("host") != socket.gethostname():
            return True
        if timeout is None:
            timeout = float(ref.get("stop_grace_seconds", self.stop_grace_seconds)) + 5.0
        return self._wait_group_gone(ref["pid"], ref.get("pgid", ref["pid"]), timeout)

    @staticmethod
    def _signal_group(pgid: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signum)

    @staticmethod
    def _wait_group_gone(pid: int, pgid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            reap(pid)
            if not group_members(pgid):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)


def read_exit_code(ref: dict) -> int | None:
    try:
        return int(Path(ref["exit_file"]).read_text().strip())
    except (KeyError, FileNotFoundError, ValueError):
        return None


def read_tail(path: Path, lines: int, max_bytes: int = 256 * 1024) -> list[str] | None:
    """The last `lines` lines of a file, reading at most its last `max_bytes` (logs grow large)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return None
    text = data.decode("utf-8", errors="replace")
    # Progress bars redraw with carriage returns: keep each line's final state.
    tail = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    if size > max_bytes and tail:
        tail = tail[1:]  # the first line was cut by the seek
    return tail[-lines:]
