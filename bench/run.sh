#!/usr/bin/env bash
# Runs every benchmark and writes docs/benchmarks.md + docs/timer_scaling.png from that one run.
#
#   bench/run.sh            full run (~5-10 minutes on 2 cores): wall clock with 10 repetitions (medians),
#                           callgrind instruction counts, allocations, code size; writes docs/
#   bench/run.sh --quick    CI smoke (~1 minute): 1 repetition, short runs, small scaling sets, fewer
#                           callgrind iterations; writes the report under the build directory only
#
# Environment: BUILD_DIR (default build/bench-release), REPS, MIN_TIME, COUNT_SCALE override the defaults.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build/bench-release}
quick=0
if [[ ${1:-} == --quick ]]; then quick=1; fi

if ((quick)); then
  reps=${REPS:-1} min_time=${MIN_TIME:-0.02} count_scale=${COUNT_SCALE:-0.1} qflag=--quick interleave=
  out_md=$build/results/benchmarks.md out_png=$build/results/timer_scaling.png
else
  # 10 x 0.2 s: the cross-thread round trips vary by 5-10% between repetitions; a median of 5 moved
  # WakePingPong by 3% between two runs of the same code.
  reps=${REPS:-10} min_time=${MIN_TIME:-0.2} count_scale=${COUNT_SCALE:-1} qflag=
  # repetitions of all cases in random order: load that drifts over the run hits every library alike
  interleave=--benchmark_enable_random_interleaving=true
  out_md=$root/docs/benchmarks.md out_png=$root/docs/timer_scaling.png
fi
results=$build/results
started=$(date +%s)

echo "== build (Release) in $build"
cmake -S "$root/bench" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C "$build" -j2 >/dev/null
rm -rf "$results"
mkdir -p "$results/cg" "$(dirname "$out_md")"

echo "== wall clock: $reps repetitions, min_time ${min_time}s"
timeout 1200 "$build/tinyloop_bench" $qflag --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
  --benchmark_min_time="$min_time" $interleave --benchmark_out="$results/wall.json" --benchmark_out_format=json \
  >"$results/wall.txt"

echo "== callgrind: user-space instructions per operation (scale $count_scale)"
# --instr-atstart=no: setup runs uninstrumented; each case turns instrumentation on, zeroes the counters
# after a warm-up, runs a fixed number of operations and dumps (one dump file per case).
timeout 1200 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$results/cg/callgrind.out.%p" \
  "$build/tinyloop_bench" $qflag --count --count_scale="$count_scale" \
  >"$results/cg/manifest.txt" 2>"$results/cg/valgrind.log"

echo "== code size"
size "$build"/size/size_*_O2 "$build"/size/size_*_Os "$build"/size/size_*_Osmin >"$results/size.txt"

echo "== report"
{
  echo "commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if git -C "$root" diff --quiet HEAD -- loop.hpp 2>/dev/null; then
    echo "loop=loop.hpp as committed (last change $(git -C "$root" log -1 --format=%h -- loop.hpp 2>/dev/null))"
  else
    echo "loop=loop.hpp with uncommitted changes (blob $(git -C "$root" hash-object loop.hpp | cut -c1-10), last commit $(git -C "$root" log -1 --format=%h -- loop.hpp 2>/dev/null))"
  fi
  echo "compiler=$(c++ --version | head -1)"
  echo "libuv=$(pkg-config --modversion libuv 2>/dev/null || echo '?')"
  echo "libev=$(dpkg-query -W -f='${Version}' libev-dev 2>/dev/null || echo '?')"
  echo "benchmark=$(dpkg-query -W -f='${Version}' libbenchmark-dev 2>/dev/null || echo '?')"
  echo "valgrind=$(valgrind --version)"
  echo "kernel=$(uname -sr)"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "mode=$([[ $quick == 1 ]] && echo quick || echo full)"
  echo "reps=$reps"
  echo "min_time=$min_time"
  echo "count_scale=$count_scale"
} >"$results/env.txt"
python3 "$root/bench/report.py" --results "$results" --out "$out_md" --plot-data "$results/timer_scaling.dat" \
  --plot-name "$(basename "$out_png")"
gnuplot -e "datafile='$results/timer_scaling.dat'; outfile='$out_png'" "$root/bench/timer_scaling.gp"
echo "== done in $(( $(date +%s) - started ))s: $out_md, $out_png"
