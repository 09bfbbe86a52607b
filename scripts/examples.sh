#!/usr/bin/env bash
# The examples command: installs missing packages, builds the host preset's examples and
# runs each example's smoke test (CTest label `example`). The programs are left in
# build/host/examples/.
#
#   bash scripts/examples.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs=${TINYLOOP_JOBS:-2}

bash scripts/deps.sh
if [[ ! -f examples/CMakeLists.txt ]]; then
  echo "examples/ has no CMakeLists.txt yet: nothing to build" >&2
  exit 1
fi
cmake --preset host
# Only the examples directory (Ninja's per-directory target), not the whole test suite.
cmake --build --preset host -j "$jobs" --target examples/all
ctest --preset host -L '^example$' -j "$jobs"
echo "The example programs are in build/host/examples/."
