#!/usr/bin/env bash
# Create .venv (if missing) and install sbihep into it with the given extras, e.g. `setup_venv.sh test`.
# Torch is installed first and explicitly, so that pip never resolves a bare `torch` to a multi-GB
# CUDA build on a CPU-only machine. Override with TORCH_SPEC / TORCH_PIP_ARGS (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-}
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# shellcheck disable=SC2086
"${pip[@]}" "${TORCH_SPEC:-torch==2.13.0}" ${TORCH_PIP_ARGS:-}
"${pip[@]}" -e ".${extras:+[$extras]}"
