#!/usr/bin/env bash
# The main job, end to end, on the embedded default: no database server, no broker, no GPU.
# Sets up .venv, then trains SmolLM2-135M-Instruct with LoRA on the sample dataset on this
# machine's CPU, showing live progress, and prints where the adapter is.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements.txt
. .venv/bin/activate
# Use the embedded default even if the shell has production variables set.
unset DATABASE_URL REDIS_URL STORAGE_BACKEND DJANGO_SECRET_KEY
exec python manage.py train \
  --dataset data/sample/elena_morales_chat.jsonl \
  --preset balanced \
  --name "Elena Morales voice (demo)" \
  "$@" \
  --wait
