#!/bin/sh
# Cross-compiles the CPU backend for aarch64 and checks that a whole-model translation unit on the
# CPU backend compiles there too: Highway builds its NEON and SVE targets from the same kernels.
# Nothing is linked or run. Needs Debian's g++-12-aarch64-linux-gnu (apt install
# g++-12-aarch64-linux-gnu); the header-only dependencies come from the host's /usr/include.
#
#   tools/check_arm_compile.sh            # from the repository root
set -eu
CXX=${CXX:-aarch64-linux-gnu-g++-12}
NM=${NM:-aarch64-linux-gnu-nm}
command -v "$CXX" >/dev/null || { echo "check_arm_compile: $CXX not found" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flags="-std=c++20 -Wall -Wextra -Wpedantic -Werror -Iinclude -Ibackends/cpu/include -Ibackends/cpu/src
       -idirafter /usr/include -idirafter /usr/include/eigen3"
for src in backends/cpu/src/*.cc; do
  obj="$out/$(basename "$src").o"
  # shellcheck disable=SC2086
  $CXX $flags -O2 -c "$src" -o "$obj"
  targets=$($NM -C "$obj" | grep -o 'N_[A-Z0-9_]*::' | sort -u | tr -d ':' | tr '\n' ' ')
  echo "$src: ${targets:-no Highway target}"
done
# shellcheck disable=SC2086
$CXX $flags -Itests -DDSV4_TEST_DATA_DIR='"."' -fsyntax-only tests/cpu/model_cpu_test.cpp
echo "tests/cpu/model_cpu_test.cpp: compiles"
