#!/usr/bin/env bash
# Run every check: lint, format, types, then the tests (unit and integration).
# Pass pytest arguments to narrow it, e.g. ./test.sh -m "not slow" or ./test.sh tests/unit.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
