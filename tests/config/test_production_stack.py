"""The production stack serves its own admin and survives a burst (issue 18, item 11).

Each test runs the app in a subprocess with a production environment (DEBUG off, a random key),
since settings are read once per process: gunicorn serving the admin's static files through
WhiteNoise, and Django's PostgreSQL connection pool against the real server.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.config.test_settings import ROOT, run_manage

HOST = "lora.example.com"


def database_url(name: str = "postgres", user: str = "postgres") -> str:
    """The test server's URL on one of its databases (the `postgres` database always exists)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    match = re.match(r"^(postgres(?:ql)?://)(?:[^@/]*@)?([^/]+)/", url)
    assert match, url
    return f"{match[1]}{user}@{match[2]}/{name}"


def production_env(**extra: str) -> dict[str, str]:
    return {"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": HOST, "DATABASE_URL": database_url(),
            "REDIS_URL": "redis://127.0.0.1:6379/0", **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    # Behind the TLS proxy: the forwarded scheme keeps SECURE_SSL_REDIRECT from redirecting.
    request = urllib.request.Request(url, headers={"Host": HOST, "X-Forwarded-Proto": "https"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def gunicorn(tmp_path):
    """gunicorn with the production settings, after collectstatic into a temporary STATIC_ROOT."""
    env = production_env(DJANGO_STATIC_ROOT=str(tmp_path / "static"))
    collected = run_manage("collectstatic", "--noinput", env=env)
    assert collected.returncode == 0, collected.stderr
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY"}}
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--threads", "2"],
        cwd=ROOT, env={**clean, **env}, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_gunicorn_with_debug_off_serves_the_admin_css(gunicorn):
    status, headers, body = fetch(f"{gunicorn}/static/admin/css/base.css")
    assert status == 200, body[:300]
    assert headers["Content-Type"].startswith("text/css")
    assert b"DJANGO Admin styles" in body

    # The admin's own pages link the hashed (cache-busting) names; those are served too, cached
    # for good since their content can never change under that name.
    status, _headers, page = fetch(f"{gunicorn}/admin/login/")
    assert status == 200, page[:300]
    hashed = re.search(rb'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page)
    assert hashed, page[:2000]
    status, headers, _body = fetch(gunicorn + hashed[1].decode())
    assert status == 200
    assert headers["Content-Type"].startswith("text/css")
    assert "immutable" in headers.get("Cache-Control", "")


POOL_SETTINGS = "from django.conf import settings as s; import json; d = s.DATABASES['default'];" \
                " print('RESULT', json.dumps({'pool': d['OPTIONS'].get('pool'), 'age': d['CONN_MAX_AGE']}," \
                " default=str))"


def read_result(result: subprocess.CompletedProcess) -> object:
    assert result.returncode == 0, result.stderr
    return json.loads(next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))[7:])


def test_the_pool_setting_turns_on_the_connection_pool():
    result = read_result(run_manage("shell", "-c", POOL_SETTINGS, env=production_env(
        DATABASE_POOL_MAX_SIZE="8", DATABASE_POOL_MIN_SIZE="2", DATABASE_POOL_TIMEOUT="15")))
    # Django's pool needs persistent connections off: the pool keeps them instead.
    assert result["age"] == 0
    assert {k: result["pool"][k] for k in ("min_size", "max_size", "timeout")} == {
        "min_size": 2, "max_size": 8, "timeout": 15}


def test_without_the_pool_setting_connections_are_not_pooled():
    # The test command sets no pool: pytest-django's test databases keep their usual connections.
    result = read_result(run_manage("shell", "-c", POOL_SETTINGS, env=production_env()))
    assert result == {"pool": None, "age": 60}


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("DATABASE_POOL_MAX_SIZE", "many", "DATABASE_POOL_MAX_SIZE='many' is not an integer"),
    ("DATABASE_POOL_MIN_SIZE", "9", "DATABASE_POOL_MIN_SIZE=9 must be at most DATABASE_POOL_MAX_SIZE=8"),
])
def test_bad_pool_settings_fail_at_start(variable, value, message):
    env = {**production_env(DATABASE_POOL_MAX_SIZE="8"), variable: value}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert message in result.stderr


BURST = """
import json, threading
from django.db import connection
errors, pids, lock = [], set(), threading.Lock()
def request():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid(), pg_sleep(0.2)")
            pid = cursor.fetchone()[0]
        with lock:
            pids.add(pid)
    except Exception as exc:
        with lock:
            errors.append(type(exc).__name__ + ": " + str(exc).splitlines()[0])
    finally:
        connection.close()  # the end of a request: back to the pool (or closed without one)
threads = [threading.Thread(target=request) for _ in range(THREADS)]
for t in threads: t.start()
for t in threads: t.join()
print("RESULT", json.dumps({"errors": errors, "connections": len(pids)}))
"""


@pytest.fixture
def limited_role():
    """A PostgreSQL role allowed 4 connections: a server whose connection limit a burst can hit."""
    import psycopg

    role = f"pool_burst_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url().replace("postgresql://", "postgres://"), autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 4')
        try:
            yield role
        finally:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role])
            admin.execute(f'DROP ROLE "{role}"')


@pytest.mark.parametrize("pooled", [True, False], ids=["pooled", "unpooled"])
def test_a_burst_of_requests_stays_within_the_connection_limit(limited_role, pooled):
    threads = 24
    env = production_env(DATABASE_URL=database_url(user=limited_role))
    if pooled:
        env.update(DATABASE_POOL_MAX_SIZE="4", DATABASE_POOL_MIN_SIZE="0", DATABASE_POOL_TIMEOUT="30")
    result = read_result(run_manage("shell", "-c", BURST.replace("THREADS", str(threads)), env=env))
    if pooled:
        # 24 concurrent requests share 4 connections: every one is answered, the limit never hit.
        assert result["errors"] == []
        assert result["connections"] <= 4
    else:
        # What the pool prevents: one connection per concurrent request, past the server's limit.
        assert any("too many connections" in error for error in result["errors"]), result


def test_requirements_pin_the_production_server_packages():
    pins = Path(ROOT, "requirements.txt").read_text()
    for line in ("gunicorn==", "whitenoise==", "psycopg[binary,pool]==", "psycopg-pool=="):
        assert re.search(rf"(?m)^{re.escape(line)}\d", pins), f"{line} is not pinned in requirements.txt"


def test_the_addressing_style_reaches_the_s3_storage():
    # MinIO serves buckets by path; boto3's default would look for <bucket>.minio.
    code = "from django.conf import settings as s; print('RESULT', '\"%s\"' % s.STORAGES['default']['OPTIONS']['addressing_style'])"
    env = production_env(STORAGE_BACKEND="s3", AWS_STORAGE_BUCKET_NAME="lora-artifacts", AWS_S3_ADDRESSING_STYLE="path")
    assert read_result(run_manage("shell", "-c", code, env=env)) == "path"
