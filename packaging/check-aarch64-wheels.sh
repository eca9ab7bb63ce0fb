#!/usr/bin/env bash
# Check that every run-time dependency (packaging/runtime-deps.txt) and PyInstaller
# (packaging/build-deps.txt, whose wheel carries the aarch64 bootloader) has a wheel
# for aarch64 Linux and CPython 3.11, so the arm64 build (packaging/build-arm64.sh)
# never needs a compiler.  pip is given every manylinux tag: with only one, some
# packages fall back to pre-releases or fail.  Downloads wheels into a temp folder
# (network: PyPI), prints one line per package, exits 1 if any is missing.
#
#   packaging/check-aarch64-wheels.sh [PYTHON_VERSION]     (default 3.11)
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PYVER=${1:-3.11}
PIP=${PIP:-$REPO/.venv/bin/python -m pip}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PLATFORMS=(--platform manylinux2014_aarch64)
for minor in 17 28 31 34 35 36; do PLATFORMS+=(--platform "manylinux_2_${minor}_aarch64"); done
PLATFORMS+=(--platform musllinux_1_1_aarch64 --platform linux_aarch64)
missing=0
while read -r req; do
    req=${req%%#*}; req=${req// /}
    [ -z "$req" ] && continue
    dest=$TMP/${req%%=*}
    if $PIP download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --python-version "$PYVER" --implementation cp "${PLATFORMS[@]}" \
        -d "$dest" "$req" >"$TMP/log" 2>&1; then
        printf 'ok       %-28s %s\n' "$req" "$(ls "$dest")"
    else
        printf 'MISSING  %-28s %s\n' "$req" "$(grep -m1 -i error "$TMP/log")"
        missing=1
    fi
done < <(cat "$REPO/packaging/runtime-deps.txt" "$REPO/packaging/build-deps.txt")
if [ "$missing" = 0 ]; then echo "every run-time dependency has an aarch64 wheel for CPython $PYVER"; fi
exit "$missing"
