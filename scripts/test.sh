#!/usr/bin/env bash
# Sets up .venv with the development tools, then runs the whole test suite against the
# PostgreSQL and Redis on this machine (override DATABASE_URL / REDIS_URL to use others).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-dev.txt
. .venv/bin/activate

# Debian's Chromium drives the browser tests; Playwright's own browser download cannot work
# offline, so the tests launch this one by path. Without it (and no root to install it) the
# browser tests skip locally and fail under CI=true.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "test: installing Debian's chromium for the browser tests"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "test: could not install chromium; the browser tests will fail under CI" >&2
fi

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/15}"
# Unit tests run Celery tasks in-process; the integration tests start a real worker themselves.
export CELERY_TASK_ALWAYS_EAGER="${CELERY_TASK_ALWAYS_EAGER:-true}"
# The embedded model is converted from GGUF once and reused across runs.
export GPU_WORKER_CACHE="${GPU_WORKER_CACHE:-$PWD/var/cache/models}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
# Jobs that train end to end answer the first 2 items of each benchmark set, not all 180 (the
# validation suite's own tests use the whole sets in-process; docs/validation.md).
export VALIDATION_MAX_ITEMS="${VALIDATION_MAX_ITEMS:-2}"

ruff check .
# The layers and the no-cycles rule (.importlinter; docs/ARCHITECTURE.md, "Layers").
lint-imports --no-cache
python manage.py check --fail-level WARNING
python manage.py makemigrations --check --dry-run >/dev/null || {
  echo "test: models changed without a migration (run makemigrations)" >&2; exit 1; }
exec python -m pytest "$@"
