#!/usr/bin/env bash
# Installs every Debian 12 package that building and testing tinyloop needs, if missing.
# Idempotent: when everything is installed it only checks (no apt-get update, no network).
# Run as root (CI) or as a user with sudo.
#
#   bash scripts/deps.sh            install what is missing
#   bash scripts/deps.sh --check    only report what is missing (exit 1 if anything is)
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ clang libclang-rt-14-dev
  # unit tests, benchmarks, comparison loops
  googletest libgtest-dev libgmock-dev libbenchmark-dev libuv1-dev libev-dev
  # memory checking
  valgrind
  # ARM Linux cross builds, run under qemu-user
  g++-arm-linux-gnueabihf g++-aarch64-linux-gnu qemu-user
  # Cortex-M3 bare metal, run under qemu-system-arm (mps2-an385)
  qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-dev binutils-arm-none-eabi
  # wake-protocol model check, benchmark plots
  spin gnuplot-nox
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deps: all ${#packages[@]} packages are installed"
  exit 0
fi

echo "deps: missing: ${missing[*]}"
if [[ "${1:-}" == "--check" ]]; then
  exit 1
fi

as_root=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "deps: not root and no sudo: install the packages above as root" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "deps: installed ${missing[*]}"
