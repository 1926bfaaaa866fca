#!/usr/bin/env bash
# Scores telegraf.service with our drop-ins applied, offline (no running systemd needed):
#   bash packaging/check-hardening.sh [MAX_EXPOSURE]
# The base unit holds the settings of telegraf's packaged unit that matter here (Type=notify,
# User=telegraf, HUP reload, Restart=on-failure, KillMode=mixed). Fails if the exposure of the
# hardened unit is above MAX_EXPOSURE (default 2.0).
set -euo pipefail
cd "$(dirname "$0")/.."
max=${1:-2.0}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
base='[Unit]
Description=telegraf (as packaged) with metrics-agent drop-ins
[Service]
Type=notify
User=telegraf
ExecStart=/usr/bin/telegraf -config /etc/telegraf/telegraf.conf -config-directory /etc/telegraf/telegraf.d
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
KillMode=mixed'
install='[Install]
WantedBy=multi-user.target'
score() { # unit-file -> exposure number
  systemd-analyze security --offline=true --no-pager "$1" 2>/dev/null \
    | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p'
}
unit() { # drop-in files... -> a unit with their [Service] lines merged in
  printf '%s\n' "$base"
  [ $# -gt 0 ] && grep -hv -e '^\[Service\]' -e '^#' "$@"
  printf '%s\n' "$install"
}
unit > "$dir/plain.service"
unit systemd/metrics-agent-ping.conf > "$dir/ping.service"
unit systemd/metrics-agent-ping.conf systemd/metrics-agent-hardening.conf > "$dir/hardened.service"
plain=$(score "$dir/plain.service"); ping=$(score "$dir/ping.service"); hard=$(score "$dir/hardened.service")
echo "exposure: telegraf as packaged=$plain, with metrics-agent-ping.conf=$ping, with metrics-agent-hardening.conf=$hard (max $max)"
awk -v h="$hard" -v m="$max" 'BEGIN { exit !(h != "" && h + 0 <= m + 0) }'
