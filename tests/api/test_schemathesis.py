"""The API against its own OpenAPI schema, fuzzed by schemathesis: no server error, no response
the schema does not describe (status code, content type, body, headers).

schemathesis runs as a separate process (its CLI, as a client would) against a live server over
real HTTP, on PostgreSQL, with a user's token and a few rows to find (a dataset, a job, a
template) so that the operations with path parameters reach real objects and the stateful phase
can follow the schema's links. Starting a job only records the Celery delivery (the API suite's
recorder), so no worker runs. The run is bounded by examples per operation, with a fixed seed so
a failure reproduces (`st replay` lines are printed on failure).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from tests.conftest import ensure_catalogue
from training.models import ConfigurationTemplate

CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
])
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "8"))
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261201")
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
# A hard stop far above the usual run (about two minutes on 2 cores), so a hang fails loudly.
TIMEOUT_SECONDS = 900


def schemathesis_command() -> list[str]:
    exe = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    if not Path(exe).exists():
        pytest.fail("schemathesis is not installed (pip install -r requirements-dev.txt)", pytrace=False)
    return [exe]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    postgres_required, live_server, owner, make_job, make_file, tmp_path
):
    ensure_catalogue()
    token = Token.objects.create(user=owner)
    job = make_job(owner, name="fuzz target")
    make_file(owner, name="second.jsonl")
    ConfigurationTemplate.objects.create(
        name="fuzz template", base_model=job.base_model, preset=job.preset, created_by=owner
    )

    command = [
        *schemathesis_command(), "run", f"{live_server.url}/api/schema/",
        "--header", f"Authorization: Token {token.key}",
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", SEED,
        "--workers", "1",
        "--request-timeout", "60",
        "--no-color",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, cwd=tmp_path, env=env
    )
    output = result.stdout + result.stderr
    summary = output[output.rfind("SUMMARY"):] if "SUMMARY" in output else output[-3000:]
    # Kept for the record (test-output/ is gitignored): what was generated, phases, failures.
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "schemathesis-summary.txt").write_text(summary)
    assert result.returncode == 0, f"schemathesis found problems (exit {result.returncode}):\n{output[-20000:]}"
    assert "Tested:" in summary, f"schemathesis tested nothing:\n{summary}"
