#!/bin/sh
# Bounded libFuzzer run for one target; fails on any finding (crash, check failure, leak, timeout).
# usage: run_fuzz.sh FUZZER SEED_CORPUS WORKDIR SECONDS
# The seed corpus in the tree is copied, never written to; new inputs and artifacts stay in WORKDIR.
set -u
bin=$1 seeds=$2 work=$3 seconds=$4
rm -rf "$work" && mkdir -p "$work/corpus" "$work/artifacts" || exit 1
cp "$seeds"/* "$work/corpus/" 2>/dev/null
"$bin" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
       -artifact_prefix="$work/artifacts/" "$work/corpus" > "$work/fuzz.log" 2>&1
rc=$?
grep -E "INITED|DONE" "$work/fuzz.log" | tail -n 2
grep -E "^stat::" "$work/fuzz.log"
if [ $rc -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
  tail -n 60 "$work/fuzz.log"
  echo "FAIL: libFuzzer exit status $rc; artifacts:"; ls -l "$work/artifacts"
  echo "Replay one with: $bin <artifact>; add it to $seeds once the bug is fixed."
  exit 1
fi
echo "OK: no finding in ${seconds}s"
