#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, then
# lint (ruff), types (mypy), and pytest.  Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh test
echo "== ruff"
.venv/bin/ruff check edged tests benchmarks
.venv/bin/ruff format --check edged tests benchmarks
echo "== mypy"
.venv/bin/mypy edged
echo "== pytest"
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
    echo "pytest collected no tests: failing" >&2
    exit 1
fi
exit "$rc"
