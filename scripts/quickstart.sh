#!/usr/bin/env bash
# Install edged into .venv and run the quickstart: the daemon on its embedded
# defaults running the example workflow in examples/quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
exec .venv/bin/python examples/quickstart/demo.py "$@"
