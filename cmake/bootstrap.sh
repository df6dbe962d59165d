#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for adx, builds it, and runs one of:
#   bash cmake/bootstrap.sh demo [args]   the Fashion-MNIST demo (see README)
#   bash cmake/bootstrap.sh test          the test suite (ctest)
#   bash cmake/bootstrap.sh bench [args]  the speed benchmark against Python/PyTorch
# Every Debian package it needs is installed if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-test}"
shift || true

packages=(cmake make g++ libtorch-dev libopenblas0-pthread libeigen3-dev catch2 libfmt-dev libgloo-dev
          libstb-dev zlib1g-dev dataset-fashion-mnist)
# The tests export torchvision's models to check the C++ backbones against them.
if [ "$mode" = test ]; then packages+=(python3 python3-torch python3-torchvision); fi
if [ "$mode" = bench ]; then packages+=(python3 python3-torch python3-sklearn python3-numpy); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "adx: installing ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q "${missing[@]}"
fi

build_dir="${ADX_BUILD_DIR:-build}"
jobs="$(nproc)"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir" -j "$jobs"

case "$mode" in
  test)
    cd "$build_dir" && ctest --output-on-failure -j 1
    ;;
  demo)
    "$build_dir/examples/fashion_mnist" "$@"
    ;;
  bench)
    "$build_dir/examples/ae_benchmark" "$@"
    ;;
  *)
    echo "usage: bash cmake/bootstrap.sh demo|test|bench [args]" >&2
    exit 2
    ;;
esac
