#!/usr/bin/python3
"""Writes an MVTec-layout texture set from the photographs bundled with scikit-image.

scikit-image (Debian: python3-skimage) ships three real 512 x 512 grey texture photographs: brick, grass
and gravel. Nothing is downloaded and nothing is kept in this repository. Each photograph is one category:

- the middle 128 columns give the test tiles, the 192 columns either side the training tiles, so no test
  pixel was ever seen in training, and the test tiles lie between the two training sides (brick's
  perspective changes across the photograph);
- tiles are 128 x 128 at the photograph's own resolution, on an evenly spaced grid of positions within
  their columns (they overlap: a 512 px photograph holds 16 tiles side by side);
- defects are painted on test tiles, one kind per folder, with their masks in ground_truth/:
  scratch (a thin bright or dark curve), crack (a dark jagged random walk with a branch), stain (a soft
  irregular darkening), hole (a dark irregular pit with a lit rim), foreign (an irregular patch of another
  photograph: coins, the moon's surface or the camera man) and blur (an irregular region blurred). Their
  shapes come from curves, random walks and smoothed noise thresholds, unlike adx's own synthesis
  (rectangles, Perlin masks and pasted patches of normal images).

    /usr/bin/python3 examples/benchmarks/skimage_textures.py OUT_DIR [--train 100] [--good 30] [--per-defect 10]

writes OUT_DIR/<brick|grass|gravel>/{train/good, test/<kind>, ground_truth/<kind>}/NNN(.png|_mask.png).
"""
import argparse
import os

import numpy as np
from skimage import data, draw, filters, io

TILE = 128
CATEGORIES = ("brick", "grass", "gravel")
DEFECTS = ("scratch", "crack", "stain", "hole", "foreign", "blur")


TEST_COLUMNS = (192, 320)


def region_tiles(photo, regions, count, across):
    """`count` tiles on a grid of positions inside the column ranges `regions`, `across` per range and row."""
    rows = -(-count // (len(regions) * across))
    heights = np.linspace(0, photo.shape[0] - TILE, rows).round().astype(int)
    lefts = [x for start, end in regions for x in np.linspace(start, end - TILE, across).round().astype(int)]
    tiles = [photo[y:y + TILE, x:x + TILE] for y in heights for x in lefts]
    return tiles[:count]


def smooth_blob(rng, radius):
    """An irregular blob: a disc whose edge is pushed in and out by smoothed noise. Returns a bool mask."""
    noise = filters.gaussian(rng.standard_normal((TILE, TILE)), sigma=radius / 4)
    noise /= np.abs(noise).max() + 1e-12
    cy, cx = rng.integers(radius + 4, TILE - radius - 4, size=2)
    yy, xx = np.mgrid[:TILE, :TILE]
    distance = np.hypot(yy - cy, xx - cx) / radius
    return distance + 0.8 * noise < 1.0


def curve_mask(rng, width):
    """A quadratic Bezier curve across part of the tile, `width` px thick."""
    points = rng.uniform(12, TILE - 12, size=(3, 2))
    t = np.linspace(0, 1, 400)[:, None]
    path = (1 - t) ** 2 * points[0] + 2 * (1 - t) * t * points[1] + t ** 2 * points[2]
    mask = np.zeros((TILE, TILE), bool)
    for y, x in path:
        rr, cc = draw.disk((y, x), width / 2 + 0.5, shape=mask.shape)
        mask[rr, cc] = True
    return mask


def crack_mask(rng):
    """A jagged random walk with one branch, 1-2 px wide."""
    mask = np.zeros((TILE, TILE), bool)

    def walk(y, x, angle, steps):
        for _ in range(steps):
            angle += rng.normal(0, 0.5)
            y, x = y + 2 * np.sin(angle), x + 2 * np.cos(angle)
            if not (2 <= y < TILE - 2 and 2 <= x < TILE - 2):
                return y, x, angle
            rr, cc = draw.disk((y, x), rng.uniform(0.8, 1.6), shape=mask.shape)
            mask[rr, cc] = True
        return y, x, angle

    y, x = rng.uniform(20, TILE - 20, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    by, bx, bangle = walk(y, x, angle, int(rng.integers(10, 20)))
    walk(by, bx, bangle, int(rng.integers(10, 25)))
    walk(by, bx, bangle + rng.choice([-1, 1]) * rng.uniform(0.6, 1.2), int(rng.integers(6, 15)))
    return mask


def foreign_source(rng, name):
    photo = {"coins": data.coins, "moon": data.moon, "camera": data.camera}[name]().astype(np.float64)
    y, x = rng.integers(0, photo.shape[0] - TILE), rng.integers(0, photo.shape[1] - TILE)
    return photo[y:y + TILE, x:x + TILE]


def paint(rng, tile, kind):
    """Returns (defective tile, mask); both TILE x TILE, the tile as float in [0, 255]."""
    image = tile.astype(np.float64)
    level, spread = image.mean(), image.std() + 1e-6
    if kind == "scratch":
        mask = curve_mask(rng, rng.uniform(1.0, 2.5))
        soft = filters.gaussian(mask.astype(float), 0.7)
        target = level + rng.choice([-1, 1]) * rng.uniform(1.5, 2.5) * spread
        image = image * (1 - soft) + target * soft
    elif kind == "crack":
        mask = crack_mask(rng)
        soft = filters.gaussian(mask.astype(float), 0.6)
        image = image * (1 - 0.75 * soft)
    elif kind == "stain":
        mask = smooth_blob(rng, rng.uniform(10, 22))
        soft = filters.gaussian(mask.astype(float), 3)
        image = image * (1 - rng.uniform(0.3, 0.5) * soft)
    elif kind == "hole":
        mask = smooth_blob(rng, rng.uniform(6, 12))
        soft = filters.gaussian(mask.astype(float), 1)
        rim = filters.gaussian(mask.astype(float), 3) - soft
        image = image * (1 - 0.85 * soft) + 60 * np.clip(rim, 0, None)
    elif kind == "foreign":
        mask = smooth_blob(rng, rng.uniform(10, 20))
        patch = foreign_source(rng, rng.choice(["coins", "moon", "camera"]))
        patch = (patch - patch.mean()) / (patch.std() + 1e-6) * spread + level  # same brightness and contrast
        soft = filters.gaussian(mask.astype(float), 1)
        image = image * (1 - soft) + patch * soft
    elif kind == "blur":
        mask = smooth_blob(rng, rng.uniform(14, 24))
        soft = filters.gaussian(mask.astype(float), 2)
        blurred = filters.gaussian(image, sigma=rng.uniform(2.5, 4), preserve_range=True)
        image = image * (1 - soft) + blurred * soft
    else:
        raise ValueError(kind)
    return np.clip(image, 0, 255).round().astype(np.uint8), mask


def save(path, image):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    io.imsave(path, image, check_contrast=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--train", type=int, default=100, help="training tiles per category")
    parser.add_argument("--good", type=int, default=30, help="normal test tiles per category")
    parser.add_argument("--per-defect", type=int, default=10, help="test tiles per defect kind and category")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for c, name in enumerate(CATEGORIES):
        rng = np.random.default_rng(args.seed * 100 + c)
        photo = getattr(data, name)()
        root = os.path.join(args.out, name)
        train_regions = ((0, TEST_COLUMNS[0]), (TEST_COLUMNS[1], photo.shape[1]))
        for i, tile in enumerate(region_tiles(photo, train_regions, args.train, 3)):
            save(os.path.join(root, "train", "good", f"{i:03d}.png"), tile)
        test_tiles = region_tiles(photo, (TEST_COLUMNS,), args.good + args.per_defect * len(DEFECTS), 1)
        order = rng.permutation(len(test_tiles))
        for i, index in enumerate(order[:args.good]):
            save(os.path.join(root, "test", "good", f"{i:03d}.png"), test_tiles[index])
        for d, kind in enumerate(DEFECTS):
            chosen = order[args.good + d * args.per_defect:args.good + (d + 1) * args.per_defect]
            for i, index in enumerate(chosen):
                image, mask = paint(rng, test_tiles[index], kind)
                save(os.path.join(root, "test", kind, f"{i:03d}.png"), image)
                save(os.path.join(root, "ground_truth", kind, f"{i:03d}_mask.png"), (mask * 255).astype(np.uint8))
        print(f"{name}: {args.train} training tiles, {args.good} good and "
              f"{args.per_defect * len(DEFECTS)} defective test tiles ({', '.join(DEFECTS)})")


if __name__ == "__main__":
    main()
