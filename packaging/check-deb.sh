#!/usr/bin/env bash
# Builds the Debian package and checks it: its contents, that the systemd unit verifies, and
# (as root) that it installs, creates its user and state directory, that the installed binary
# accepts the installed configuration and rules, and that it purges cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null || cargo install cargo-deb --locked

echo "== build the .deb"
# cargo deb prints the path of the package it wrote (wherever the target dir is).
deb=$(cargo deb --strip | tail -n 1)
[ -f "$deb" ] || { echo "cargo deb did not produce a package"; exit 1; }
echo "built $deb"
control=$(mktemp -d)

echo "== contents"
contents=$(dpkg-deb -c "$deb")
echo "$contents"
for path in ./usr/bin/itsmd ./etc/itsmd/itsmd.toml ./etc/itsmd/rules/00-defaults.rhai \
    ./etc/itsmd/rules/10-escalation.rhai \
    ./usr/lib/systemd/system/itsmd.service ./usr/share/doc/itsmd/README.md; do
    grep -q " $path\$" <<<"$contents" || { echo "missing from the package: $path"; exit 1; }
done
dpkg-deb -I "$deb"
dpkg-deb -e "$deb" "$control/DEBIAN"
grep -qx "/etc/itsmd/itsmd.toml" "$control/DEBIAN/conffiles" || { echo "itsmd.toml is not a conffile"; exit 1; }
grep -q "useradd --system" "$control/DEBIAN/postinst" || { echo "postinst does not create the user"; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    echo "== not root: skipping install checks"
    exit 0
fi

echo "== install"
dpkg -i "$deb"
trap 'dpkg --purge itsmd >/dev/null 2>&1 || true' EXIT
getent passwd itsmd >/dev/null || { echo "user itsmd was not created"; exit 1; }
[ "$(stat -c %U /var/lib/itsmd)" = itsmd ] || { echo "/var/lib/itsmd is not owned by itsmd"; exit 1; }

echo "== systemd-analyze verify"
systemd-analyze verify /usr/lib/systemd/system/itsmd.service

echo "== the installed binary accepts the installed configuration and rules"
runuser -u itsmd -- /usr/bin/itsmd check --config /etc/itsmd/itsmd.toml --rules-dir /etc/itsmd/rules

echo "== purge"
dpkg --purge itsmd
trap - EXIT
[ ! -e /usr/bin/itsmd ] || { echo "/usr/bin/itsmd left after purge"; exit 1; }
echo "package checks passed"
