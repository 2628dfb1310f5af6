#!/usr/bin/env bash
# Run the service locally: installs what it needs, then starts an embedded Redis and the
# simulated KiotViet and Abaha (unless REDIS_URL / KIOTVIET_API_URL and ABAHA_API_URL are set),
# the web app, a worker, and registers a demo shop.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh
exec .venv/bin/python -m sandbox "$@"
