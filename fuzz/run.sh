#!/usr/bin/env bash
# Coverage-guided fuzzing with AFL++ through afl.rs (works on stable Rust; cargo-fuzz needs
# nightly): the config parser, the line-protocol encoder and every parser of bytes from outside
# the process (fuzz/src/checks.rs: PARSER_TARGETS). Usage: fuzz/run.sh [SECONDS] [TARGET...]
# Each target (default: all of them) runs SECONDS (default 60) from the seed corpus in
# fuzz/seeds/<target>/. Crash inputs are copied to tests/fixtures/fuzz-regressions/<target>/
# (replayed by `cargo test` through tests/integration/fuzz_regressions.rs) and the script exits 1.
# Needs cargo-afl (installed here if missing: `cargo install cargo-afl`, about 2 minutes; it
# builds AFL++ and its LLVM runtime for the current rustc).
set -euo pipefail
secs="${1:-60}"
shift || true
targets=("$@")
((${#targets[@]})) || targets=(config encode dns icmp sock_diag health procfs x509 mqtt)
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

if ! cargo afl --version >/dev/null 2>&1; then
  cargo install cargo-afl --locked
fi
# Builds AFL++ and the runtime for this rustc once; "already built" is fine.
cargo afl config --build >/dev/null 2>&1 || true
cargo afl build --release --quiet

export AFL_NO_UI=1 AFL_QUIET=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1
# Crashes are detected from the child's exit status; no core dumps needed.
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_SKIP_CRASHES=1

status=0
for t in "${targets[@]}"; do
  out="$here/out/$t"
  rm -rf "$out"
  mkdir -p "$out"
  echo "fuzz $t: ${secs}s from $(ls seeds/"$t" | wc -l) seed(s)"
  # -V: stop after SECONDS; the exit status says nothing about crashes, the crashes dir does.
  cargo afl fuzz -V "$secs" -i "seeds/$t" -o "$out" "target/release/$t" >"$out/afl.log" 2>&1 || {
    echo "fuzz $t: afl-fuzz failed:"; tail -20 "$out/afl.log"; status=1; continue; }
  stats="$out/default/fuzzer_stats"
  if [[ -f "$stats" ]]; then
    awk -v t="$t" -F' *: *' '/^(execs_done|execs_per_sec|corpus_count|saved_crashes|saved_hangs|bitmap_cvg)/ {s = s $1 "=" $2 " "} END {print "fuzz " t ": " s}' "$stats"
  fi
  shopt -s nullglob
  crashes=("$out"/default/crashes/id:*)
  shopt -u nullglob
  if ((${#crashes[@]})); then
    dest="$here/../tests/fixtures/fuzz-regressions/$t"
    mkdir -p "$dest"
    for c in "${crashes[@]}"; do
      cp "$c" "$dest/crash-$(sha1sum "$c" | cut -c1-16)"
    done
    echo "fuzz $t: ${#crashes[@]} crash input(s) saved to tests/fixtures/fuzz-regressions/$t/"
    status=1
  fi
done
exit "$status"
