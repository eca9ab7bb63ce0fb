#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, then
# lint (ruff), types (mypy), and pytest.  Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh test
# The MQTT adapter tests run a real Mosquitto on a free loopback port; the example Keptn
# worker is a shell script around mosquitto_sub/mosquitto_pub (mosquitto-clients).
if ! command -v mosquitto >/dev/null || ! command -v mosquitto_pub >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
    else
        echo "mosquitto is not installed: the MQTT tests will be skipped" >&2
    fi
fi
# The packaging tests build the binary (PyInstaller strips it with binutils), check
# the unit with systemd-analyze and pack a .deb with dpkg-deb (always on Debian).
missing=""
command -v objdump >/dev/null || missing="$missing binutils"
command -v systemd-analyze >/dev/null || missing="$missing systemd"
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
        echo "missing:$missing: some packaging tests will fail or be skipped" >&2
    fi
fi
echo "== ruff"
.venv/bin/ruff check edged adapters tests benchmarks packaging
.venv/bin/ruff format --check edged adapters tests benchmarks packaging
echo "== mypy"
.venv/bin/mypy edged
.venv/bin/mypy --strict adapters/edged_mqtt
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
