#!/usr/bin/env bash
# Builds the Debian package with cargo-deb and checks it: the expected files are in it at the
# expected paths with the expected modes, the conffiles are marked, and lintian reports no
# errors. Prints the path of the .deb on success.
#   bash packaging/build-deb.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
  echo "installing cargo-deb" >&2
  cargo install cargo-deb --locked --quiet
fi
if ! command -v lintian >/dev/null 2>&1; then
  sudo_cmd=""; [[ $(id -u) -eq 0 ]] || sudo_cmd="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends lintian >/dev/null
fi

deb=$(cargo deb --quiet 2>/dev/null | tail -n 1)
[[ -f "$deb" ]] || deb=$(ls -t target/debian/metrics-agent_*.deb | head -n 1)

contents=$(dpkg-deb -c "$deb")
fail=0
expect() { # mode path
  if ! grep -qE "^$1 .* \./$2\$" <<<"$contents"; then
    echo "missing or wrong mode: $1 $2" >&2
    fail=1
  fi
}
expect '-rwxr-xr-x' 'usr/bin/metrics-agent'
expect '-rw-r--r--' 'etc/metrics-agent/metrics-agent.toml'
expect '-rw-r--r--' 'etc/telegraf/telegraf.d/metrics-agent.conf'
expect '-rw-r--r--' 'lib/systemd/system/telegraf.service.d/metrics-agent-ping.conf'
expect '-rw-r--r--' 'usr/lib/sysctl.d/60-metrics-agent-ping.conf'
expect '-rw-r--r--' 'usr/share/doc/metrics-agent/examples/metrics-agent-hardening.conf'
expect '-rw-r--r--' 'usr/share/metrics-agent/grafana/metrics-agent.json'
expect '-rw-r--r--' 'usr/share/doc/metrics-agent/copyright'

conffiles=$(dpkg-deb -I "$deb" conffiles)
for f in /etc/metrics-agent/metrics-agent.toml /etc/telegraf/telegraf.d/metrics-agent.conf; do
  grep -qx "$f" <<<"$conffiles" || { echo "not a conffile: $f" >&2; fail=1; }
done

# The packaged binary runs and its packaged config is valid.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp"
"$tmp/usr/bin/metrics-agent" --config "$tmp/etc/metrics-agent/metrics-agent.toml" --check-config

# lintian: errors fail the build; warnings are printed for the record.
lintian --fail-on error --suppress-tags-from-file packaging/lintian-suppressed.txt "$deb" >&2 || fail=1

((fail == 0)) || { echo "package check failed: $deb" >&2; exit 1; }
echo "$deb"
