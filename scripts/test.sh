#!/usr/bin/env bash
# Set up .venv and run the test suite (pass pytest arguments through).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh test
# Torch's default threading on small shared machines can be ~10x slower than one thread.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec .venv/bin/python -m pytest -q "$@"
