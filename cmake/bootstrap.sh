#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for adx, builds it, and runs one of:
#   bash cmake/bootstrap.sh demo [args]   the Fashion-MNIST demo (see README)
#   bash cmake/bootstrap.sh test          the test suite (ctest)
#   bash cmake/bootstrap.sh bench [args]  the autoencoder speed benchmark against Python/PyTorch
#   bash cmake/bootstrap.sh image-bench   Deep SVDD and GANomaly against the same models in Python
#   bash cmake/bootstrap.sh leaderboard   every image detector on the full Fashion-MNIST protocol (hours)
#   bash cmake/bootstrap.sh industrial    PatchCore, PaDiM and SPADE on the synthetic industrial data
#   bash cmake/bootstrap.sh textures [args] the image detectors on real texture photographs (scikit-image's)
#   bash cmake/bootstrap.sh nab-bench [args]      NAB's realTweets and artificial series, beside the baselines
#   bash cmake/bootstrap.sh citeseer-bench [args] CiteSeer with injected anomalies (5 seeds), beside the baselines
#   bash cmake/bootstrap.sh tables-bench [args]   scikit-learn's tables as one-class sets, beside the baselines
#   bash cmake/bootstrap.sh patchcore-bench  PatchCore speed and memory, coreset against anomalib's loop
#   bash cmake/bootstrap.sh search-bench    PatchCore's memory-bank search: adx exact, faiss exact, IVF, HNSW, SQ8
#   bash cmake/bootstrap.sh latency-bench   batch-1 latency of every image detector; PatchCore's real-time preset
#   bash cmake/bootstrap.sh timeseries [args] every time-series detector on a generated series (or --data FILE.csv)
#   bash cmake/bootstrap.sh series-bench    Anomaly Transformer against Python, and scoring memory on 10^6 steps
#   bash cmake/bootstrap.sh graph [args]    every graph detector on a generated graph (or --features/--edges files)
#   bash cmake/bootstrap.sh graph-bench     DOMINANT on 10^4..10^6-node graphs, and against PyGOD's dense DOMINANT
#   bash cmake/bootstrap.sh video [args]    MemAE, future-frame prediction and MIL on the generated surveillance scene
#   bash cmake/bootstrap.sh ensemble-bench  an ensemble (rotation, VAE, Deep SVDD) against its members on Fashion-MNIST
#   bash cmake/bootstrap.sh server-load     the scoring server under concurrent clients on 127.0.0.1
#   bash cmake/bootstrap.sh server-faults   the scoring server under good and hostile clients, then SIGTERM
#   bash cmake/bootstrap.sh dist-bench      1 process against 2 data-parallel processes (c10d Gloo) on this machine
# Every Debian package it needs is installed if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-test}"
shift || true

packages=(cmake ninja-build make g++ libtorch-dev libopenblas0-openmp libeigen3-dev catch2 libfmt-dev libgloo-dev
          libstb-dev zlib1g-dev dataset-fashion-mnist libcli11-dev nlohmann-json3-dev libcpp-httplib-dev
          pkg-config libfaiss-dev libssl-dev)
# The tests export torchvision's models to check the C++ backbones against them, and run reference
# code that calls OpenCV and scikit-image (NSA's label). The server's test reads its listen backlog with ss.
if [ "$mode" = test ]; then packages+=(python3 python3-torch python3-torchvision python3-opencv python3-skimage iproute2); fi
if [ "$mode" = textures ]; then packages+=(python3 python3-skimage); fi
if [ "$mode" = tables-bench ]; then packages+=(python3 python3-sklearn python3-numpy); fi
case "$mode" in
  bench|image-bench|patchcore-bench|series-bench|graph-bench) packages+=(python3 python3-torch python3-sklearn python3-numpy) ;;
esac

# The labelled real data sets live outside the repository; checked before the build, which takes minutes.
real_data="${ADX_REAL_DATA:-../shared/data}"
case "$mode" in
  nab-bench|citeseer-bench)
    if [ ! -d "$real_data" ]; then
      echo "adx: $mode reads the real data sets from $real_data, which does not exist; set ADX_REAL_DATA" >&2
      exit 2
    fi ;;
esac

source cmake/packages.sh
install_missing_packages "${packages[@]}"

# LibTorch calls BLAS through libblas.so.3 and libopenblas.so.0. The OpenMP build
# of OpenBLAS shares LibTorch's OpenMP runtime, so the two thread pools never
# fight for the cores; the pthread build, which Debian's alternatives prefer when
# both are installed (priority 100 against 95), makes training up to 4x slower.
multiarch="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
for lib in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
  target="/usr/lib/$multiarch/openblas-openmp/$lib"
  [ -e "$target" ] || continue
  current="$(update-alternatives --query "$lib-$multiarch" 2>/dev/null | sed -n 's/^Value: //p')"
  if [ "$current" != "$target" ]; then
    echo "adx: selecting the OpenMP build of OpenBLAS for $lib"
    "${sudo_cmd[@]}" update-alternatives --set "$lib-$multiarch" "$target"
  fi
done

build_dir="${ADX_BUILD_DIR:-build}"
jobs="$(nproc)"
# The benchmark programs are built only for the modes that run one.
case "$mode" in
  demo|test|timeseries|graph|video|industrial|textures|leaderboard|server-faults) benchmarks=() ;;
  *) benchmarks=(-DADX_BUILD_BENCHMARKS=ON) ;;
esac
cmake -S . -B "$build_dir" $(generator_for "$build_dir") -DCMAKE_BUILD_TYPE=Release "${benchmarks[@]}"
cmake --build "$build_dir" -j "$jobs"

source cmake/openblas_core.sh
select_openblas_core "$build_dir/tests/blas_probe"

case "$mode" in
  test)
    # One test program per core, each on one thread (ADX_NUM_THREADS), unless the caller chose a count;
    # cmake/numerics.sh runs the numerics-sensitive programs at 1 and 2 threads.
    cd "$build_dir" && ADX_NUM_THREADS="${ADX_NUM_THREADS:-1}" ctest --output-on-failure -j "$jobs"
    ;;
  demo)
    "$build_dir/examples/fashion_mnist" "$@"
    ;;
  bench)
    "$build_dir/examples/ae_benchmark" "$@"
    ;;
  image-bench)
    "$build_dir/examples/image_benchmark" "$@"
    ;;
  leaderboard)
    # GAN detectors at CPU-sized settings (see docs/results.md); every other detector at its defaults.
    "$build_dir/examples/fashion_mnist" --full --detectors all \
      --set ganomaly:width=32 --set ganomaly:train.epochs=5 \
      --set skip_ganomaly:width=16 --set skip_ganomaly:train.epochs=5 \
      --set anogan:width=16 --set anogan:train.epochs=5 --set anogan:search_steps=20 \
      --set f_anogan:width=32 --set f_anogan:train.epochs=5 --set f_anogan:encoder_train.epochs=5 \
      --set simclr:train.epochs=10 "$@"
    ;;
  timeseries)
    "$build_dir/examples/timeseries" --out "$build_dir/timeseries_results" "$@"
    ;;
  series-bench)
    "$build_dir/examples/series_benchmark" --size small "$@"
    "$build_dir/examples/series_benchmark" --size paper --windows 256 --score-windows 200 "$@"
    "$build_dir/examples/series_benchmark" --memory-steps 1000000 --memory-detector autoencoder --stride 1
    "$build_dir/examples/series_benchmark" --memory-steps 1000000 --memory-detector anomaly_transformer
    ;;
  graph)
    "$build_dir/examples/graph" --out "$build_dir/graph_results" "$@"
    ;;
  graph-bench)
    echo "| nodes | edges | generate s | fit s | score s | input MiB | peak RSS MiB |"
    echo "|---|---|---|---|---|---|---|"
    for n in 10000 100000 1000000; do "$build_dir/examples/graph_benchmark" --nodes "$n" "$@"; done
    "$build_dir/examples/graph_benchmark" --compare 10000,20000,30000,50000,100000 --epochs 5
    ;;
  video)
    "$build_dir/examples/video" --out "$build_dir/video_results" "$@"
    ;;
  industrial)
    "$build_dir/examples/industrial" --out "$build_dir/industrial_results" "$@"
    ;;
  textures)
    # The set is cut from the photographs scikit-image ships (examples/benchmarks/skimage_textures.py).
    [ -d "$build_dir/textures/brick" ] || /usr/bin/python3 examples/benchmarks/skimage_textures.py "$build_dir/textures"
    "$build_dir/examples/industrial" --data "$build_dir/textures" --size 128 --out "$build_dir/textures_results" \
      --detectors texture_energy,patchcore,padim,nsa,cutpaste,draem "$@"
    ;;
  nab-bench|citeseer-bench)
    # With no arguments, the tables of docs/results.md; with arguments, one run on that data set with them.
    if [ "$mode" = nab-bench ] && [ $# -eq 0 ]; then
      for group in "realTweets 288" "artificial 100"; do
        set -- $group
        "$build_dir/examples/nab_benchmark" --data-dir "$real_data/nab" --match "$1" --window "$2" \
          --detectors matrix_profile,isolation_forest,autoencoder,vae --set isolation_forest:step_score=max \
          --out "$build_dir/nab_$1.md"
      done
    elif [ "$mode" = nab-bench ]; then
      "$build_dir/examples/nab_benchmark" --data-dir "$real_data/nab" "$@"
    elif [ $# -eq 0 ]; then
      "$build_dir/examples/injected_graph_benchmark" --features "$real_data/citeseer/features.npy" \
        --edges "$real_data/citeseer/edges.csv" --detectors structural,isolation_forest,dominant \
        --out "$build_dir/citeseer_results.md"
    else
      "$build_dir/examples/injected_graph_benchmark" --features "$real_data/citeseer/features.npy" \
        --edges "$real_data/citeseer/edges.csv" "$@"
    fi
    ;;
  tables-bench)
    # The tables ship with python3-sklearn; the script writes them out as one-class sets.
    [ -d "$build_dir/tables" ] || /usr/bin/python3 examples/benchmarks/sklearn_tables.py "$build_dir/tables"
    "$build_dir/examples/tabular_benchmark" --data-dir "$build_dir/tables" --out "$build_dir/tables_results.md" "$@"
    ;;
  patchcore-bench)
    "$build_dir/examples/patchcore_benchmark" --work "$build_dir" "$@"
    ;;
  search-bench)
    "$build_dir/examples/search_benchmark" --work "$build_dir" "$@"
    ;;
  latency-bench)
    "$build_dir/examples/latency_benchmark" --work "$build_dir" "$@"
    ;;
  ensemble-bench)
    "$build_dir/examples/ensemble_benchmark" "$@"
    ;;
  server-load)
    "$build_dir/examples/server_load" --clients 8 --requests 20000 "$@"
    "$build_dir/examples/server_load" --clients 16 --requests 120000 --rows 64 --server-threads 16 "$@"
    ;;
  server-faults)
    "$build_dir/examples/server_faults" "$@"
    ;;
  dist-bench)
    "$build_dir/examples/distributed_benchmark" "$@"
    ;;
  *)
    echo "usage: bash cmake/bootstrap.sh demo|test|bench|image-bench|leaderboard|industrial|textures|nab-bench|citeseer-bench|tables-bench|patchcore-bench|search-bench|latency-bench|timeseries|series-bench|graph|graph-bench|video|ensemble-bench|server-load|server-faults|dist-bench [args]" >&2
    exit 2
    ;;
esac
