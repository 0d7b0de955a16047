#!/usr/bin/env bash
# Set up .venv and run the main demo (pass `sbihep demo` options through).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec .venv/bin/sbihep demo "$@"
