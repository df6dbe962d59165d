#!/usr/bin/env bash
# The sanitizer and fuzzing checks, on top of a machine that `bootstrap.sh` set up:
#   bash cmake/sanitize.sh [fuzz_seconds]
# 1. builds adx, its tests and the libFuzzer targets with clang, AddressSanitizer and
#    UndefinedBehaviorSanitizer (build-sanitize/);
# 2. runs the test suite under both sanitizers, less the training-heavy programs and cases (any report fails it);
# 3. runs every fuzz target for fuzz_seconds (default 30) on a seed corpus it writes,
#    with a 2 GiB memory limit and a 10 s per-input time limit. A crash, a leak, an
#    uncaught foreign exception, a hang or an oversized allocation fails the run and
#    leaves the input in build-sanitize/fuzz/findings/.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_seconds="${1:-30}"

packages=(clang libclang-rt-dev ninja-build)
source cmake/packages.sh
install_missing_packages "${packages[@]}"

build_dir=build-sanitize
# The build leaves out the training-heavy test programs and the examples (see tests/CMakeLists.txt).
cmake -S . -B "$build_dir" $(generator_for "$build_dir") -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DADX_FUZZ=ON \
  -DADX_BUILD_EXAMPLES=OFF
cmake --build "$build_dir" -j "$(nproc)"
source cmake/openblas_core.sh
select_openblas_core "$build_dir/tests/blas_probe"

# LibTorch is not instrumented and keeps some allocations for the life of the process;
# leaks are reported for adx's own code by the fuzzers, where LibTorch's start-up does
# not repeat per input. Some tests ask for more memory than exists on purpose and expect
# an adx::Error: the allocator returns null there instead of aborting.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Each test program leaves out its [slow] cases there (training runs whose time is LibTorch's kernels).
# One test program per core, each on one thread, as bootstrap.sh runs them. adx keeps no freed
# tensor memory for reuse (ADX_CPU_CACHE_MB=0), so that AddressSanitizer sees every tensor freed;
# the cache's own test sets its cap itself.
(cd "$build_dir" && ADX_NUM_THREADS="${ADX_NUM_THREADS:-1}" ADX_CPU_CACHE_MB="${ADX_CPU_CACHE_MB:-0}" ctest --output-on-failure -j "$(nproc)" -E "find_package_consumer")

fuzz_dir="$build_dir/fuzz"
rm -rf "$fuzz_dir/seeds"
mkdir -p "$fuzz_dir/findings"
"$build_dir/tests/fuzz/fuzz_seeds" "$fuzz_dir/seeds"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
for target in npy idx csv image state_dict model_file; do
  corpus="$fuzz_dir/corpus/$target"
  mkdir -p "$corpus"
  echo "adx: fuzzing $target for ${fuzz_seconds}s"
  "$build_dir/tests/fuzz/fuzz_$target" "$corpus" "$fuzz_dir/seeds/$target" -max_total_time="$fuzz_seconds" \
    -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$fuzz_dir/findings/$target-" 2>&1 | grep -E "stat::number_of_executed_units|ERROR|Done|BINGO|SUMMARY" || true
  if ls "$fuzz_dir/findings/$target-"* >/dev/null 2>&1; then
    echo "adx: fuzz_$target found inputs that fail; see $fuzz_dir/findings"
    exit 1
  fi
done
echo "adx: sanitizer tests and fuzzing passed"
