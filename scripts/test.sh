#!/usr/bin/env bash
# The test command: builds and runs every test suite of tinyloop.
#
#   bash scripts/test.sh               all suites
#   bash scripts/test.sh host tsan     only the named suites
#
# Suites (CMake presets, see CMakePresets.json), in order:
#   host asan tsan valgrind armhf aarch64 armhf-asan aarch64-asan cortex-m3 fuzz   (and clang, by name)
# `valgrind` is not a preset: it runs the host build's unit-test programs under
# `valgrind --error-exitcode=1` (scripts/valgrind_units.cmake).
#
# Installs missing Debian packages first (scripts/deps.sh). Every suite runs even when
# an earlier one failed; the script exits non-zero at the end if anything failed, and its
# last line is "tests: N passed, N failed" (summed over the suites; a configure or build
# failure counts as one failed test). Logs: build/test-logs/<suite>.<step>.log.
# Environment: TINYLOOP_JOBS (default 2) for build and ctest parallelism.
set -uo pipefail

# Everything runs inside main(), which bash reads completely before it starts: editing
# this file while it runs cannot change what the running script does.
main() {
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
jobs=${TINYLOOP_JOBS:-2}
logs="$root/build/test-logs"

# `clang` (the unit tests built with Clang) is not in the default list: Clang is covered by the
# header compile checks (tests/compile), the fuzz suite and the consumer checks, and the full test
# command must stay well inside CI's time on 2 cores. Run it by name: bash scripts/test.sh clang
all_suites=(host asan tsan valgrind armhf aarch64 armhf-asan aarch64-asan cortex-m3 fuzz)
if [[ $# -gt 0 ]]; then
  suites=("$@")
else
  suites=("${all_suites[@]}")
fi

script_start=$SECONDS
echo "=== deps"
if ! bash scripts/deps.sh; then
  echo "tests: 0 passed, 1 failed"
  echo "scripts/deps.sh failed: cannot install the packages the tests need" >&2
  exit 1
fi
mkdir -p "$logs"

total_passed=0
total_failed=0
report=()
host_failed=0

# The sources a suite needs; a suite whose sources are not in the tree yet is skipped.
suite_sources() {
  case "$1" in
    cortex-m3) echo "loop.hpp toolchains/arm-none-eabi-cortex-m3.cmake tests/baremetal/CMakeLists.txt" ;;
    fuzz)      echo "loop.hpp tests/fuzz/CMakeLists.txt" ;;
    *)         echo "loop.hpp tests/CMakeLists.txt" ;;
  esac
}

# CPU seconds used so far by finished child processes (user + system): unlike wall time,
# it does not depend on what else the machine is doing.
# `times` must run in this shell (a $(...) subshell has its own children), so it writes a
# file; sets $cpu_seconds.
cpu_children() {
  times >"$logs/.times"
  cpu_seconds=$(tail -n 1 "$logs/.times" | awk '{ split($1, u, /[ms]/); split($2, s, /[ms]/);
                                                  printf "%d", u[1] * 60 + u[2] + s[1] * 60 + s[2] }')
}

# Adds the counts of a CTest-style summary line in file $1 to the totals;
# prints "passed failed" for the suite.
count_results() {
  local line total failed
  line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$1" | tail -n 1)
  if [[ -z "$line" ]]; then
    echo "0 0"
    return
  fi
  failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
  total=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
  echo "$((total - failed)) $failed"
}

# ThreadSanitizer cannot map its shadow memory with more than 28 bits of mmap ASLR
# (newer kernels default to 32); run its tests without ASLR there, if allowed.
tsan_wrapper=()
if [[ -r /proc/sys/vm/mmap_rnd_bits ]] && (($(cat /proc/sys/vm/mmap_rnd_bits) > 28)); then
  if setarch "$(uname -m)" -R true 2>/dev/null; then
    tsan_wrapper=(setarch "$(uname -m)" -R)
  else
    echo "warning: vm.mmap_rnd_bits > 28 and setarch -R is not permitted: TSan may fail to start" >&2
  fi
fi

run_preset_suite() {
  local suite=$1 start=$SECONDS t_build passed failed extra=0 note="" cpu0
  cpu_children; cpu0=$cpu_seconds
  local missing=()
  for f in $(suite_sources "$suite"); do
    [[ -e "$f" ]] || missing+=("$f")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    echo "!!! SKIPPED suite $suite: not in the tree yet: ${missing[*]}"
    report+=("$(printf '%-13s SKIPPED (missing %s)' "$suite" "${missing[*]}")")
    return
  fi

  echo "--- $suite: configure"
  if ! cmake --preset "$suite" >"$logs/$suite.configure.log" 2>&1; then
    tail -n 60 "$logs/$suite.configure.log"
    echo "!!! $suite: configure FAILED (log: $logs/$suite.configure.log)"
    [[ "$suite" == host ]] && host_failed=1
    total_failed=$((total_failed + 1))
    report+=("$(printf '%-13s FAILED at configure  %4d s' "$suite" $((SECONDS - start)))")
    return
  fi

  echo "--- $suite: build"
  # -k 0: build everything that can be built, so the tests that can run still run.
  if ! cmake --build --preset "$suite" -j "$jobs" -- -k 0 >"$logs/$suite.build.log" 2>&1; then
    grep -E -B2 -A12 'error|FAILED' "$logs/$suite.build.log" | head -n 120
    echo "!!! $suite: build FAILED (log: $logs/$suite.build.log)"
    extra=1
    note=" build FAILED;"
  fi
  t_build=$((SECONDS - start))

  echo "--- $suite: test"
  local wrapper=()
  [[ "$suite" == tsan ]] && wrapper=("${tsan_wrapper[@]}")
  local ctest_args=(--preset "$suite" -j "$jobs")
  # Tests labelled `valgrind` are covered by the valgrind suite (every unit program of the
  # host build); the spin model checks (`model`) do not depend on the compiler or target,
  # so they run once, in the host suite.
  if [[ "$suite" == host ]]; then
    ctest_args+=(-LE '^valgrind$')
  else
    ctest_args+=(-LE '^(valgrind|model)$')
  fi
  "${wrapper[@]}" ctest "${ctest_args[@]}" >"$logs/$suite.test.log" 2>&1
  local rc=$?
  read -r passed failed < <(count_results "$logs/$suite.test.log")
  if [[ $rc -ne 0 ]]; then
    # Show the failures (with their output: the presets set output-on-failure).
    grep -v -E '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed' "$logs/$suite.test.log" | tail -n 200
    if [[ $failed -eq 0 ]]; then
      failed=1   # ctest failed without a summary line (no tests, crash, bad preset)
    fi
  else
    tail -n 3 "$logs/$suite.test.log"
  fi
  failed=$((failed + extra))
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  local status=ok
  [[ $failed -gt 0 ]] && status=FAILED
  cpu_children
  report+=("$(printf '%-13s %-6s %4d passed %3d failed  %4d s (configure+build %d s, tests %d s; cpu %d s)%s' \
    "$suite" "$status" "$passed" "$failed" $((SECONDS - start)) "$t_build" $((SECONDS - start - t_build)) \
    $((cpu_seconds - cpu0)) "$note")")
  echo "=== $suite: $status, $passed passed, $failed failed, $((SECONDS - start)) s (cpu $((cpu_seconds - cpu0)) s)"
}

run_valgrind_suite() {
  local start=$SECONDS passed failed cpu0
  cpu_children; cpu0=$cpu_seconds
  if [[ $host_failed -ne 0 || ! -f build/host/CTestTestfile.cmake ]]; then
    echo "!!! SKIPPED suite valgrind: the host suite was not built"
    report+=("$(printf '%-13s SKIPPED (no host build)' valgrind)")
    return
  fi
  echo "--- valgrind: unit-test programs of build/host"
  # tinyloop_test_alloc interposes malloc/operator new, which valgrind replaces too.
  cmake -DBUILD_DIR=build/host -DLABEL=unit '-DEXCLUDE=/tinyloop_test_alloc$' \
    -P scripts/valgrind_units.cmake 2>&1 | tee "$logs/valgrind.test.log"
  local rc=${PIPESTATUS[0]}
  read -r passed failed < <(count_results "$logs/valgrind.test.log")
  [[ $rc -ne 0 && $failed -eq 0 ]] && failed=1
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  local status=ok
  [[ $failed -gt 0 ]] && status=FAILED
  cpu_children
  report+=("$(printf '%-13s %-6s %4d passed %3d failed  %4d s (cpu %d s)' valgrind "$status" "$passed" "$failed" \
    $((SECONDS - start)) $((cpu_seconds - cpu0)))")
  echo "=== valgrind: $status, $passed passed, $failed failed, $((SECONDS - start)) s (cpu $((cpu_seconds - cpu0)) s)"
}

for suite in "${suites[@]}"; do
  echo
  echo "=== suite $suite ($(date -u +%H:%M:%S))"
  case "$suite" in
    valgrind) run_valgrind_suite ;;
    host|clang|asan|tsan|release|armhf|aarch64|armhf-asan|aarch64-asan|cortex-m3|fuzz) run_preset_suite "$suite" ;;
    *) echo "!!! unknown suite '$suite' (known: ${all_suites[*]})"; total_failed=$((total_failed + 1)) ;;
  esac
done

# The footprint figures (README "Footprint"): the Cortex-M3 loop's flash and RAM from the minimal
# timer + post program, and sizeof(event_loop) for default_config on each target built by this run.
# Re-runs those few quick tests verbosely and prints what they print.
footprint=()
for suite in "${suites[@]}"; do
  case "$suite" in
    cortex-m3) re='^baremetal[.]footprint$' ;;
    host|armhf|aarch64) re='^footprint[.]sizeof$' ;;
    *) continue ;;
  esac
  [[ -f "build/$suite/CTestTestfile.cmake" ]] || continue
  while IFS= read -r line; do
    footprint+=("$line")
  done < <(ctest --test-dir "build/$suite" -R "$re" -V 2>/dev/null | sed -nE 's/^[0-9]+: //p' |
           grep -v -E '^(Test command|Working Directory|Test timeout|Environment variables|  [A-Za-z_]+=|\s*$)')
done
if [[ ${#footprint[@]} -gt 0 ]]; then
  echo
  echo "=== footprint"
  printf '  %s\n' "${footprint[@]}"
fi

echo
cpu_children
echo "=== summary (wall time $((SECONDS - script_start)) s, cpu $cpu_seconds s, logs in $logs)"
for line in "${report[@]}"; do
  echo "  $line"
done
echo "tests: $total_passed passed, $total_failed failed"
[[ $total_failed -eq 0 ]]
}

# One line: bash parses all of it before main runs, so the exit is already read.
main "$@"; exit $?
