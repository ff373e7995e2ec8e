#!/usr/bin/env bash
# Installs the Debian 12 packages dsv4 builds with, if any is missing. Safe to run again.
# The CUDA toolkit is optional and not installed here: the CUDA backend is built when nvcc exists.
set -euo pipefail

packages=(
  build-essential cmake ninja-build
  libeigen3-dev libtbb-dev libhwy-dev librange-v3-dev doctest-dev
  nlohmann-json3-dev libcli11-dev libfmt-dev
  clang libclang-rt-14-dev  # the `fuzz` preset: clang with its libFuzzer and sanitizer runtimes
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all build dependencies are installed"
  exit 0
fi

echo "bootstrap: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
