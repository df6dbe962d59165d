#!/usr/bin/env python3
"""Reference greedy k-center coreset selection, written as anomalib's
KCenterGreedy does it (PatchCore's memory-bank subsampling), for adx's
PatchCore benchmark. Reads the projected patch features that the benchmark
wrote (an N x D float32 .npy), starts from the same row, and times the loop.

  coreset_reference.py FEATURES.npy --size K --start S [--iterations I] [--threads T]

anomalib's loop recomputes the distance of every row to each new centre, so
every iteration costs the same; with --iterations I < K only the first I are
run and the time is also reported per iteration. Prints one JSON line.
"""
import argparse, json, time
import numpy as np
import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("features")
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--start", type=int, required=True)
    p.add_argument("--iterations", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    features = torch.from_numpy(np.load(args.features))
    iterations = args.size if args.iterations <= 0 else min(args.iterations, args.size)

    t0 = time.perf_counter()
    # anomalib.models.components.sampling.k_center_greedy.KCenterGreedy.select_coreset_idxs
    min_distances = None
    selected = []
    idx = args.start
    for _ in range(iterations):
        distance = torch.linalg.norm(features - features[idx:idx + 1], ord=2, dim=1, keepdim=True)
        min_distances = distance if min_distances is None else torch.minimum(min_distances, distance)
        idx = int(torch.argmax(min_distances).item())
        selected.append(idx)
    seconds = time.perf_counter() - t0
    radius = None
    if iterations == args.size:
        final = torch.minimum(min_distances, torch.linalg.norm(features - features[idx:idx + 1], dim=1, keepdim=True))
        radius = float(final.max())
    print(json.dumps({"mode": "anomalib", "seconds": seconds, "iterations": iterations,
                      "seconds_per_iteration": seconds / iterations, "coverage_radius": radius,
                      "selected": selected}), flush=True)


if __name__ == "__main__":
    main()
