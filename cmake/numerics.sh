#!/usr/bin/env bash
# The numerics-sensitive tests again, under every OpenBLAS kernel family this CPU runs (the environment's,
# Haswell: what AMD machines get, SkylakeX: what Intel AVX-512 machines get) and at 1 and 2 threads, on a
# build that `bootstrap.sh test` made:
#   bash cmake/numerics.sh
# No test may rest on one kernel's rounding: exact answers come from adx's own fixed-order arithmetic, and
# every other comparison states its tolerance.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${ADX_BUILD_DIR:-build}"
source cmake/openblas_core.sh
probe="$build_dir/tests/blas_probe"
[ -x "$probe" ] || { echo "adx: $probe is missing; run bash cmake/bootstrap.sh test first" >&2; exit 1; }

# Each entry: a test program and the Catch2 tests of it that compare numbers across arithmetic paths.
checks=(
  "test_industrial [search]"
  "test_industrial [coreset]"
  "test_reference_values"
  "test_backbones"
  "test_distributed"
)
mapfile -t cores < <(runnable_openblas_cores "$probe")
for skipped in Haswell SkylakeX; do
  printf '%s\n' "${cores[@]}" | grep -qix "$skipped" || echo "adx: this CPU cannot run OpenBLAS's $skipped kernels; skipping them"
done
failed=0
for core in "${cores[@]}"; do
  for threads in 1 2; do
    for check in "${checks[@]}"; do
      read -r program tags <<<"$check"
      echo "adx: $program ${tags:-(all)} with OPENBLAS_CORETYPE=$core, $threads thread(s)"
      if ! (cd "$build_dir/tests" &&
            OPENBLAS_CORETYPE="$core" ADX_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" \
            ADX_TEST_TMP="$PWD/tmp" ADX_TORCHVISION_DIR="$PWD/torchvision_export" \
            ./"$program" ${tags:+"$tags"} --order rand --rng-seed 1 > numerics.log 2>&1); then
        cat "$build_dir/tests/numerics.log"
        failed=1
      else
        tail -n 2 "$build_dir/tests/numerics.log"
      fi
    done
  done
done
if [ "$failed" -ne 0 ]; then
  echo "adx: numerics checks failed under some kernel family or thread count"
  exit 1
fi
echo "adx: numerics checks passed under: ${cores[*]}, 1 and 2 threads"
