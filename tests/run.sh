#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs the real servers the tests talk to
# (tests/packages.txt), then runs formatting, lint, unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < tests/packages.txt
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=""; [[ $(id -u) -eq 0 ]] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  # Servers are started by the tests on loopback ports of their own; keep the packaged ones off.
  printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee /usr/sbin/policy-rc.d >/dev/null
  $sudo_cmd chmod +x /usr/sbin/policy-rc.d
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  $sudo_cmd rm -f /usr/sbin/policy-rc.d
fi

cargo fmt --check
cargo clippy --all-targets --all-features -- -D warnings
cargo test --all-features

# Deployment artefacts: the hardening drop-in keeps its score, the Debian package builds, holds
# what it should and passes lintian.
bash packaging/check-hardening.sh
bash packaging/build-deb.sh >/dev/null

# Coverage-guided fuzzing, bounded: each of the 8 targets 20 s from its seed corpus (under 3
# minutes in all, keeping the whole script under 20 minutes on a fresh clone); a crash input is
# kept under tests/fixtures/fuzz-regressions/ (replayed by cargo test) and fails this run.
bash fuzz/run.sh 20
