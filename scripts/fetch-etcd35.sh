#!/usr/bin/env bash
# Puts etcd 3.5 (Debian unstable's etcd-server/etcd-client) into .etcd35/bin for `make test-etcd35`.
# The system's apt sources and state stay untouched: a private sources list, lists dir and cache
# under .etcd35/apt. The archive URI is the system's own Debian mirror. Idempotent: does nothing
# when .etcd35/bin/etcd already reports 3.5.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${ETCD35_DIR:-$PWD/.etcd35}
BIN=$DEST/bin
# The version is read into a variable, not piped into `grep -q`/`head`: under pipefail a reader
# that exits early turns etcd's SIGPIPE into exit 141 (which failed CI once).
installed_version() { "$BIN/etcd" --version 2>/dev/null || true; }
if [ -x "$BIN/etcd" ] && [[ "$(installed_version)" == *"etcd Version: 3.5."* ]]; then
  exit 0
fi
SOURCES=/etc/apt/sources.list.d/debian.sources
URI=$(awk '/^URIs:/ {print $2; exit}' "$SOURCES" 2>/dev/null || true)
URI=${URI:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
APT=$DEST/apt
rm -rf "$APT" && mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/parts" "$APT/debs"
echo "deb [signed-by=$KEYRING] $URI unstable main" >"$APT/sources.list"
OPTS=(
  -o "Dir::Etc::sourcelist=$APT/sources.list"
  -o "Dir::Etc::sourceparts=$APT/parts"
  -o "Dir::State::Lists=$APT/lists"
  -o "Dir::Cache=$APT/cache"
  -o "Dir::State::status=/dev/null"
  -o "APT::Architecture=$(dpkg --print-architecture)"
  -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=root"
)
echo "fetching etcd 3.5 from $URI unstable (private apt state in $APT)"
apt-get "${OPTS[@]}" update -qq
(cd "$APT/debs" && apt-get "${OPTS[@]}" download etcd-server etcd-client)
rm -rf "$DEST/root" && mkdir -p "$DEST/root" "$BIN"
for deb in "$APT"/debs/*.deb; do dpkg-deb -x "$deb" "$DEST/root"; done
ln -sf ../root/usr/bin/etcd "$BIN/etcd"
ln -sf ../root/usr/bin/etcdctl "$BIN/etcdctl"
rm -rf "$APT"
version=$("$BIN/etcd" --version)
echo "${version%%$'\n'*}"
