#!/usr/bin/env bash
# CI check of the Linux package, as root on Debian/Ubuntu: build the .deb (packaging/linux/build.sh,
# which smoke-tests the bundle first), install it with dpkg -i, run `llamadash --smoke-test` from
# /usr/bin, validate the installed desktop file and AppStream metainfo, and remove the package.
# Exits non-zero on the first failure; the package is removed again in any case.
#
#   packaging/ci_package.sh            # needs .venv with '.[package]', dpkg-deb, desktop-file-validate,
#                                      # appstreamcli (apt-get install desktop-file-utils appstream)
set -euo pipefail
cd "$(dirname "$0")/.."
APP_ID=io.github.llamadash.llamadash

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'ci_package.sh: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs and removes the .deb)"
for tool in dpkg-deb desktop-file-validate appstreamcli; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install dpkg-dev desktop-file-utils appstream)"
done
if dpkg-query -W -f='${Status}' llamadash 2>/dev/null | grep -q "ok installed"; then
  die "a llamadash package is already installed; remove it first (dpkg -r llamadash)"
fi

packaging/linux/build.sh
DEB=$(ls -t dist/llamadash_*.deb | head -n 1)

cleanup() { dpkg -r llamadash >/dev/null 2>&1 || true; }
trap cleanup EXIT

say "dpkg -i $DEB"
dpkg -i "$DEB"

say "llamadash --smoke-test from /usr/bin"
[ "$(command -v llamadash)" = /usr/bin/llamadash ] || die "llamadash on PATH is $(command -v llamadash), not /usr/bin/llamadash"
(cd / && env -u LLAMADASH_DATA_DIR QT_QPA_PLATFORM=offscreen /usr/bin/llamadash --smoke-test) \
  || die "the installed llamadash failed its smoke test"

say "desktop-file-validate"
desktop-file-validate "/usr/share/applications/$APP_ID.desktop"
say "appstreamcli validate --no-net"
appstreamcli validate --no-net "/usr/share/metainfo/$APP_ID.metainfo.xml"
for f in "/usr/share/icons/hicolor/256x256/apps/$APP_ID.png" "/usr/share/icons/hicolor/scalable/apps/$APP_ID.svg"; do
  [ -f "$f" ] || die "the package did not install $f"
done

say "dpkg -r llamadash"
trap - EXIT
dpkg -r llamadash
[ ! -e /usr/bin/llamadash ] && [ ! -e /opt/llamadash ] || die "dpkg -r left /usr/bin/llamadash or /opt/llamadash behind"
echo "ci_package.sh: the .deb built, installed, smoke-tested, validated and removed"
