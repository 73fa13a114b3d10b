#!/usr/bin/env bash
# Installs the Debian packages the app and its tests need, when they are missing.
set -euo pipefail
missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
if [ "${1:-}" = "--with-services" ]; then
  # the browser tests drive Debian's Chromium through Playwright
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
  # the notification tests post alerts to a real Alertmanager they start
  [ -x /usr/bin/prometheus-alertmanager ] || missing+=(prometheus-alertmanager)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} from Debian"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
