#!/usr/bin/env bash
# Build the arm64 (aarch64) binary and .deb on an x86_64 Debian host, in an
# emulated arm64 Debian bookworm root.  PyInstaller does not cross-compile: the
# bootloader, CPython and every extension module must be arm64 builds, so the
# whole build runs under qemu-user-static inside the root.  ~12 minutes here
# (most of it debootstrap and pip under emulation); not run in CI.
#
#   sudo packaging/build-arm64.sh            -> build/arm64/deb/edged_<v>-1_arm64.deb
#
# Needs root, the debootstrap and qemu-user-static packages, and binfmt_misc
# (qemu-user-static registers the aarch64 interpreter with the F flag, so the
# chroot needs no copy of qemu).  On an arm64 host (a Pi 4/5 with a 64-bit OS)
# none of this is needed: run packaging/build-deb.sh there directly.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOTFS=${EDGED_ARM64_ROOT:-$REPO/build/arm64-root}
OUT=$REPO/build/arm64
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

if [ "$(id -u)" != 0 ]; then echo "run as root (debootstrap, chroot, mount)" >&2; exit 2; fi
if [ "$(dpkg --print-architecture)" = arm64 ]; then
    exec bash "$REPO/packaging/build-deb.sh"
fi
for tool in debootstrap qemu-aarch64-static; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install debootstrap qemu-user-static" >&2; exit 2; }
done
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    echo "binfmt_misc has no qemu-aarch64 entry: systemctl restart systemd-binfmt (or update-binfmts --enable qemu-aarch64)" >&2
    exit 2
fi

# 1. the arm64 root (kept between runs; delete it to start over)
if [ ! -x "$ROOTFS/usr/bin/python3" ]; then
    debootstrap --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,libpython3.11,binutils,git,ca-certificates \
        "$SUITE" "$ROOTFS" "$MIRROR"
fi

# 2. the sources and a build dir, bind-mounted; /proc for PyInstaller and pip
mkdir -p "$ROOTFS/src" "$ROOTFS/out" "$OUT"
cleanup() {
    umount -l "$ROOTFS/src" "$ROOTFS/out" "$ROOTFS/proc" "$ROOTFS/dev" 2>/dev/null || true
}
trap cleanup EXIT
mount --bind "$REPO" "$ROOTFS/src"
mount --bind "$OUT" "$ROOTFS/out"
mount -t proc proc "$ROOTFS/proc"
mount --bind /dev "$ROOTFS/dev"
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"

# 3. the same scripts as on amd64, inside the root
chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    EDGED_BUILD_DIR=/out bash -c 'git config --global --add safe.directory /src; bash /src/packaging/build-deb.sh' \
    | tail -n 1 | sed "s#^/out#$OUT#"
