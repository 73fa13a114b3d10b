#!/usr/bin/env bash
# `make run`: migrate, start a dev etcd cluster if there is none, serve on 127.0.0.1:9090.
# BIND (host:port), DATA_DIR and DEV_ETCD_PORTS (the dev cluster's client ports) override.
# Ctrl-C stops the server and the dev cluster it started and exits 0: an interrupt is how a
# developer ends `make run`, so make must not report it as a failure ("Error 130").
set -euo pipefail
PY=.venv/bin/python
DATA_DIR=${DATA_DIR:-./data}
BIND=${BIND:-127.0.0.1:9090}
DEV_ETCD_PORTS=${DEV_ETCD_PORTS:-2379,22379,32379}
export DATA_DIR

trap 'exit 0' INT TERM

$PY manage.py migrate --noinput
$PY manage.py collectstatic --noinput -v0

if [ -z "${ETCD_ENDPOINTS:-}" ]; then
  first_port=${DEV_ETCD_PORTS%%,*}
  if curl -sf --max-time 2 "http://127.0.0.1:$first_port/health" >/dev/null 2>&1; then
    echo "using the etcd that answers on 127.0.0.1:$first_port"
    export ETCD_ENDPOINTS=http://127.0.0.1:$first_port
  else
    $PY -m devtools.localcluster --data-dir "$DATA_DIR/dev-etcd" --client-ports "$DEV_ETCD_PORTS"
    ETCD_ENDPOINTS=$(echo "$DEV_ETCD_PORTS" | sed 's|\([0-9][0-9]*\)|http://127.0.0.1:\1|g')
    export ETCD_ENDPOINTS
    # The dev cluster lives as long as the server: stop it by the PIDs it recorded (its data
    # stays in $DATA_DIR/dev-etcd, so the next `make run` restarts the same cluster).
    stop_dev_cluster() {
      kill -9 $(cat "$DATA_DIR/dev-etcd/pids") 2>/dev/null || true
      echo "stopped the dev etcd cluster (data kept in $DATA_DIR/dev-etcd)"
    }
    trap stop_dev_cluster EXIT
  fi
fi
$PY manage.py runmonitor --bind "$BIND"
