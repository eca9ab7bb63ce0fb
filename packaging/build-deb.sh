#!/usr/bin/env bash
# Build the edged .deb from the one-folder binary (packaging/build.sh onedir).
#
#   packaging/build-deb.sh            -> build/packaging/deb/edged_<version>-1_<arch>.deb
#
# Layout: /usr/lib/edged/ (the PyInstaller folder) with /usr/bin/edged a symlink to
# it, /lib/systemd/system/edged.service, /etc/edged/edged.yaml (a conffile, every
# key commented), maintainer scripts that create the `edged` system user and enable
# the unit, copyright and changelog.  The architecture is the build host's
# (dpkg --print-architecture: amd64, arm64, armhf): PyInstaller does not
# cross-compile, see packaging/ARM.md.  The .deb's path is the LAST line of output.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${EDGED_BUILD_DIR:-$REPO/build/packaging}
BIN=$(bash "$REPO/packaging/build.sh" onedir | tail -n 1)
APPDIR=$(dirname "$BIN")

VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$REPO/edged/__init__.py")
DEBVERSION="$VERSION-1"
ARCH=$(dpkg --print-architecture)
OUT=$BUILD/deb
ROOT=$OUT/root
mkdir -p "$OUT"
# one .deb build at a time per build dir (parallel test sessions share it)
exec 9>"$OUT/.lock"
flock 9
rm -rf "$ROOT"
mkdir -p "$ROOT/DEBIAN" "$ROOT/usr/lib" "$ROOT/usr/bin" "$ROOT/lib/systemd/system" \
    "$ROOT/etc/edged" "$ROOT/usr/share/doc/edged"

cp -a "$APPDIR" "$ROOT/usr/lib/edged"
ln -s ../lib/edged/edged "$ROOT/usr/bin/edged"
install -m 0644 "$REPO/systemd/edged.service" "$ROOT/lib/systemd/system/edged.service"
install -m 0644 "$REPO/packaging/debian/edged.yaml" "$ROOT/etc/edged/edged.yaml"
install -m 0644 "$REPO/packaging/debian/copyright" "$ROOT/usr/share/doc/edged/copyright"
install -m 0644 "$REPO/README.md" "$ROOT/usr/share/doc/edged/README.md"
gzip -9n -c "$REPO/README.md" > "$ROOT/usr/share/doc/edged/README.md.gz" && rm "$ROOT/usr/share/doc/edged/README.md"
cat > "$OUT/changelog" <<CHANGES
edged ($DEBVERSION) stable; urgency=medium

  * Release $VERSION: single PyInstaller binary, hardened systemd unit.

 -- edged maintainers <edged@example.org>  $(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)}")
CHANGES
gzip -9n -c "$OUT/changelog" > "$ROOT/usr/share/doc/edged/changelog.Debian.gz"
for script in postinst prerm postrm; do
    install -m 0755 "$REPO/packaging/debian/$script" "$ROOT/DEBIAN/$script"
done
echo /etc/edged/edged.yaml > "$ROOT/DEBIAN/conffiles"
SIZE_KB=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
cat > "$ROOT/DEBIAN/control" <<CONTROL
Package: edged
Version: $DEBVERSION
Architecture: $ARCH
Maintainer: edged maintainers <edged@example.org>
Installed-Size: $SIZE_KB
Depends: libc6 (>= 2.28), adduser
Recommends: init-system-helpers
Section: admin
Priority: optional
Homepage: https://github.com/edged/edged
Description: durable workflow daemon for edge gateways
 edged runs Netflix/Orkes Conductor workflow definitions from a local SQLite
 write-ahead journal on Raspberry Pi class gateways, so a workflow finishes
 correctly across power loss and restarts.  It serves Conductor's REST API and
 runs as a hardened Type=notify systemd service with a watchdog.
 .
 This package ships a self-contained PyInstaller build (CPython included).
CONTROL
# files root-owned whatever user builds; no fakeroot needed
DEB=$OUT/edged_${DEBVERSION}_${ARCH}.deb
# xz for releases; the tests set EDGED_DEB_COMPRESSION=gzip (4x faster, same contents)
dpkg-deb --root-owner-group -Z"${EDGED_DEB_COMPRESSION:-xz}" --build "$ROOT" "$DEB.partial" >&2
mv "$DEB.partial" "$DEB"
echo "$DEB"
