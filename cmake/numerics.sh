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

# Each entry: a test program and the Catch2 tests of it that compare numbers across arithmetic paths (a tag,
# or [#<file>] for every test case of a source file of adx_tests).
checks=(
  "adx_tests [search]"
  "adx_tests [coreset]"
  "adx_tests [#test_reference_values]"
  "adx_tests [#test_backbones]"
  "adx_tests [texture_energy]"
  "test_distributed"
)
mapfile -t cores < <(runnable_openblas_cores "$probe")
for skipped in Haswell SkylakeX; do
  printf '%s\n' "${cores[@]}" | grep -qix "$skipped" || echo "adx: this CPU cannot run OpenBLAS's $skipped kernels; skipping them"
done
# Every run has its own log and its own folder for the files it writes. The one-thread runs go two at a time
# on a machine with two cores or more, the two-thread runs one at a time.
work="$build_dir/tests/numerics"
rm -rf "$work"
mkdir -p "$work"
run_check() {  # core threads program [tags]
  local core="$1" threads="$2" program="$3" tags="${4:-}" name
  name="${core}_${threads}_${program}${tags:+_${tags//[^a-z]/}}"
  mkdir -p "$work/$name"
  if (cd "$build_dir/tests" &&
      OPENBLAS_CORETYPE="$core" ADX_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" \
      ADX_TEST_TMP="$PWD/numerics/$name" ADX_TORCHVISION_DIR="$PWD/torchvision_export" \
      ./"$program" -# ${tags:+"$tags"} --order rand --rng-seed 1 > "numerics/$name.log" 2>&1); then
    echo "adx: $program ${tags:-(all)} with OPENBLAS_CORETYPE=$core, $threads thread(s): $(tail -n 2 "$work/$name.log" | tr -s '\n' ' ')"
  else
    echo "adx: $program ${tags:-(all)} with OPENBLAS_CORETYPE=$core, $threads thread(s) FAILED:"
    cat "$work/$name.log"
    touch "$work/failed"
  fi
}
side_by_side=$(( $(nproc) >= 2 ? 2 : 1 ))
for threads in 1 2; do
  at_once=$(( threads == 1 ? side_by_side : 1 ))
  for core in "${cores[@]}"; do
    for check in "${checks[@]}"; do
      read -r program tags <<<"$check"
      while [ "$(jobs -rp | wc -l)" -ge "$at_once" ]; do wait -n || true; done
      run_check "$core" "$threads" "$program" "$tags" &
    done
  done
  wait
done
if [ -e "$work/failed" ]; then
  echo "adx: numerics checks failed under some kernel family or thread count"
  exit 1
fi
echo "adx: numerics checks passed under: ${cores[*]}, 1 and 2 threads"
