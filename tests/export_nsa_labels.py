#!/usr/bin/env python3
"""Fixtures for adx's NSA label parity test: the 'logistic-intensity' label of the authors' reference
(hmsch/natural-synthetic-anomalies, self_sup_data/self_sup_tasks.py, the end of patch_ex), computed with the
libraries it calls: OpenCV's medianBlur and scikit-image's median over disk(5) (Debian's python3-opencv and
python3-skimage), on images blended by hand so that the label alone is compared.

  export_nsa_labels.py OUT_FILE

OUT_FILE holds, per case "<name>.": "original" and "blended" (C x H x W float32 in [0, 1], as adx takes
them), "patches" (H x W, 0 / 1: the union of the pasted rectangles, the reference's `mask`) and "label"
(H x W float64), for k = 1/6, x0 = 20, tol = 1 (the reference's defaults).
"""
import sys

import cv2
import numpy as np
import torch
from skimage.filters import median
from skimage.morphology import disk


def reference_label(dest, patchex, mask, tol=1, k=1 / 6, x0=20):
    """patch_ex's label for label_mode 'logistic-intensity': dest, patchex H x W x C on the 0-255 scale, mask
    H x W x 1 (uint8 0 / 1)."""
    label_mask = np.uint8(np.mean(np.abs(1.0 * mask * dest - 1.0 * mask * patchex), axis=-1, keepdims=True) > tol)
    label_mask[..., 0] = cv2.medianBlur(label_mask[..., 0], 5)
    label = np.mean(np.abs(label_mask * dest * 1.0 - label_mask * patchex * 1.0), axis=-1, keepdims=True)
    label[..., 0] = median(label[..., 0], disk(5))
    return label_mask / (1 + np.exp(-k * (label - x0)))


def blended_case(rng, height, width, channels):
    """A textured image and a copy with 1 to 3 rectangles changed: smooth shifts of different strength (so
    the logistic is sampled over its range), faint changes under the tolerance, and noise."""
    ys, xs = np.mgrid[0:height, 0:width]
    original = 0.5 + 0.25 * np.sin(xs / 5.0 + rng.uniform(0, 6)) * np.cos(ys / 7.0)
    original = np.repeat(original[None], channels, 0) + 0.05 * rng.standard_normal((channels, height, width))
    original = np.clip(original, 0, 1).astype(np.float32)
    blended = original.copy()
    patches = np.zeros((height, width), np.uint8)
    for _ in range(rng.integers(1, 4)):
        h, w = rng.integers(8, height // 2), rng.integers(8, width // 2)
        top, left = rng.integers(0, height - h), rng.integers(0, width - w)
        strength = rng.choice([0.002, 0.04, 0.08, 0.15, 0.3])
        shift = strength * np.sin(xs[top:top + h, left:left + w] / 3.0 + rng.uniform(0, 6))
        noise = 0.01 * rng.standard_normal((channels, h, w))
        blended[:, top:top + h, left:left + w] = np.clip(blended[:, top:top + h, left:left + w] + shift + noise, 0, 1)
        patches[top:top + h, left:left + w] = 1
    return original, blended, patches


def main(out):
    rng = np.random.default_rng(5)
    fixtures = {}
    for name, (height, width, channels) in {"rgb": (48, 56, 3), "grey": (40, 40, 1), "wide": (32, 80, 3),
                                            "rgb2": (64, 64, 3)}.items():
        original, blended, patches = blended_case(rng, height, width, channels)
        # The reference works on H x W x C images on the 0-255 scale; float64 from the float32 values.
        to_hwc = lambda image: np.transpose(image.astype(np.float64) * 255.0, (1, 2, 0))
        label = reference_label(to_hwc(original), to_hwc(blended), patches[..., None])[..., 0]
        fixtures.update({f"{name}.original": torch.from_numpy(original), f"{name}.blended": torch.from_numpy(blended),
                         f"{name}.patches": torch.from_numpy(patches.astype(np.float32)),
                         f"{name}.label": torch.from_numpy(label)})
    torch.save(fixtures, out)


if __name__ == "__main__":
    main(sys.argv[1])
