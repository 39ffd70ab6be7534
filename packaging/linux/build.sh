#!/usr/bin/env bash
# Build the Linux packages of llamadash: the PyInstaller bundle, smoke-tested, then a .deb and a .tar.gz.
#
#   packaging/linux/build.sh            # uses .venv/bin/python (pip install -e '.[package]' first)
#   PYTHON=/path/to/python packaging/linux/build.sh
#
# Writes dist/llamadash/ (the one-folder bundle), dist/llamadash_<version>_<arch>.deb and
# dist/llamadash-<version>-linux-<machine>.tar.gz. Nothing is packaged unless the bundle's own
# `llamadash --smoke-test` passes. The .deb puts the bundle in /opt/llamadash, a launcher in
# /usr/bin/llamadash, the desktop file, hicolor icons and AppStream metainfo under /usr/share.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
APP_ID=io.github.llamadash.llamadash
DIST=$ROOT/dist
BUNDLE=$DIST/llamadash

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }

[ -x "$PYTHON" ] || die "no Python at $PYTHON (create .venv and pip install -e '.[package]', or set PYTHON)"
"$PYTHON" -c 'import PyInstaller' 2>/dev/null || die "PyInstaller is missing: $PYTHON -m pip install -e '.[package]'"
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (apt-get install dpkg-dev)"
VERSION=$("$PYTHON" -c 'import re,sys; print(re.search(r"^__version__\s*=\s*\"([^\"]+)\"", open("llamadash/__init__.py").read(), re.M).group(1))')
ARCH=$(dpkg --print-architecture)
MACHINE=$(uname -m)
say "llamadash $VERSION for $ARCH"

say "PyInstaller bundle"
start=$(date +%s)
rm -rf "$BUNDLE" build/pyinstaller
"$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath "$DIST" --workpath build/pyinstaller packaging/llamadash.spec
echo "PyInstaller took $(( $(date +%s) - start )) s; bundle: $(du -sh "$BUNDLE" | cut -f1)"

say "smoke test of the bundle"
QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen} "$BUNDLE/llamadash" --smoke-test \
  || die "the bundle failed its smoke test; nothing was packaged"

say ".deb"
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
PKG=$STAGE/pkg
install -d "$PKG/DEBIAN" "$PKG/opt" "$PKG/usr/bin" "$PKG/usr/share/applications" "$PKG/usr/share/metainfo" \
  "$PKG/usr/share/icons/hicolor/scalable/apps" "$PKG/usr/share/doc/llamadash"
cp -a "$BUNDLE" "$PKG/opt/llamadash"
cat > "$PKG/usr/bin/llamadash" <<'EOF'
#!/bin/sh
# llamadash launcher: the bundle lives in /opt/llamadash.
exec /opt/llamadash/llamadash "$@"
EOF
chmod 0755 "$PKG/usr/bin/llamadash"
install -m 0644 "resources/$APP_ID.desktop" "$PKG/usr/share/applications/$APP_ID.desktop"
install -m 0644 "resources/$APP_ID.metainfo.xml" "$PKG/usr/share/metainfo/$APP_ID.metainfo.xml"
install -m 0644 resources/llamadash.svg "$PKG/usr/share/icons/hicolor/scalable/apps/$APP_ID.svg"
for png in resources/icons/llamadash-*.png; do
  size=${png##*-}; size=${size%.png}
  install -D -m 0644 "$png" "$PKG/usr/share/icons/hicolor/${size}x${size}/apps/$APP_ID.png"
done
install -m 0644 LICENSE "$PKG/usr/share/doc/llamadash/copyright"
INSTALLED_KB=$(du -sk "$PKG" | cut -f1)
# The bundle carries its own Python and Qt; these are the system libraries Qt's xcb platform loads.
cat > "$PKG/DEBIAN/control" <<EOF
Package: llamadash
Version: $VERSION
Section: utils
Priority: optional
Architecture: $ARCH
Maintainer: The llamadash developers <llamadash@users.noreply.github.com>
Installed-Size: $INSTALLED_KB
Depends: libc6, libgl1, libegl1, libfontconfig1, libfreetype6, libxkbcommon0, libxkbcommon-x11-0, libdbus-1-3, libglib2.0-0, libx11-xcb1, libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, libxcb-shape0, libxcb-randr0, libxcb-render-util0, libxcb-xinerama0, libxcb-image0
Homepage: https://github.com/llamadash/llamadash
Description: desktop dashboard for llama.cpp's llama-server
 llamadash keeps a library of local LLMs with their complete llama-server
 configurations, starts and stops the servers, and shows their logs and
 live charts of the machine's CPU, memory and GPU.
EOF
cat > "$PKG/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q /usr/share/applications || true
  command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t -f /usr/share/icons/hicolor || true
fi
exit 0
EOF
cp "$PKG/DEBIAN/postinst" "$PKG/DEBIAN/postrm"
chmod 0755 "$PKG/DEBIAN/postinst" "$PKG/DEBIAN/postrm"
DEB=$DIST/llamadash_${VERSION}_${ARCH}.deb
# --root-owner-group: files owned by root without fakeroot; xz is what every dpkg reads.
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >/dev/null
echo "built $DEB ($(du -h "$DEB" | cut -f1))"

say ".tar.gz"
TARBALL=$DIST/llamadash-${VERSION}-linux-${MACHINE}.tar.gz
install -m 0644 "resources/$APP_ID.desktop" "resources/$APP_ID.metainfo.xml" "$BUNDLE/_internal/resources/"
tar -C "$DIST" --owner=0 --group=0 -czf "$TARBALL" llamadash
echo "built $TARBALL ($(du -h "$TARBALL" | cut -f1))"
