"""Writes VUS-ROC and VUS-PR for 50 random label/score sets, computed by the authors' reference.

The functions below are TheDatumOrg/VUS's `vus/utils/metrics.py` (class metricor: range_convers_new,
sequencing, new_sequence, RangeAUC_volume_opt; Apache-2.0), copied with only the indentation and the
unused outputs changed. Needs numpy only.

Usage: python3 export_vus.py OUT.txt
Output: one case per block:
  n buffer thresholds
  the n labels (0/1)
  the n scores (repr, exact)
  vus_roc vus_pr (repr)
"""
import sys

import numpy as np


def range_convers_new(label):
    L = []
    i = 0
    j = 0
    while j < len(label):
        while label[i] == 0:
            i += 1
            if i >= len(label):
                break
        j = i + 1
        if j >= len(label):
            if j == len(label):
                L.append((i, j - 1))
            break
        while label[j] != 0:
            j += 1
            if j >= len(label):
                L.append((i, j - 1))
                break
        if j >= len(label):
            break
        L.append((i, j - 1))
        i = j
    return L


def new_sequence(label, sequence_original, window):
    a = max(sequence_original[0][0] - window // 2, 0)
    sequence_new = []
    for i in range(len(sequence_original) - 1):
        if sequence_original[i][1] + window // 2 < sequence_original[i + 1][0] - window // 2:
            sequence_new.append((a, sequence_original[i][1] + window // 2))
            a = sequence_original[i + 1][0] - window // 2
    sequence_new.append((a, min(sequence_original[len(sequence_original) - 1][1] + window // 2, len(label) - 1)))
    return sequence_new


def sequencing(x, L, window=5):
    label = x.copy().astype(float)
    length = len(label)
    for k in range(len(L)):
        s = L[k][0]
        e = L[k][1]
        x1 = np.arange(e + 1, min(e + window // 2 + 1, length))
        label[x1] += np.sqrt(1 - (x1 - e) / (window))
        x2 = np.arange(max(s - window // 2, 0), s)
        label[x2] += np.sqrt(1 - (s - x2) / (window))
    label = np.minimum(np.ones(length), label)
    return label


def range_auc_volume_opt(labels_original, score, windowSize, thre=250):
    window_3d = np.arange(0, windowSize + 1, 1)
    P = np.sum(labels_original)
    seq = range_convers_new(labels_original)
    l = new_sequence(labels_original, seq, windowSize)

    score_sorted = -np.sort(-score)

    auc_3d = np.zeros(windowSize + 1)
    ap_3d = np.zeros(windowSize + 1)

    tp = np.zeros(thre)
    N_pred = np.zeros(thre)

    for k, i in enumerate(np.linspace(0, len(score) - 1, thre).astype(int)):
        threshold = score_sorted[i]
        pred = score >= threshold
        N_pred[k] = np.sum(pred)

    for window in window_3d:
        labels_extended = sequencing(labels_original, seq, window)
        L = new_sequence(labels_extended, seq, window)

        TF_list = np.zeros((thre + 2, 2))
        Precision_list = np.ones(thre + 1)
        j = 0

        for i in np.linspace(0, len(score) - 1, thre).astype(int):
            threshold = score_sorted[i]
            pred = score >= threshold
            labels = labels_extended.copy()
            existence = 0

            for seg in L:
                labels[seg[0]:seg[1] + 1] = labels_extended[seg[0]:seg[1] + 1] * pred[seg[0]:seg[1] + 1]
                if (pred[seg[0]:(seg[1] + 1)] > 0).any():
                    existence += 1
            for seg in seq:
                labels[seg[0]:seg[1] + 1] = 1

            TP = 0
            N_labels = 0
            for seg in l:
                TP += np.dot(labels[seg[0]:seg[1] + 1], pred[seg[0]:seg[1] + 1])
                N_labels += np.sum(labels[seg[0]:seg[1] + 1])

            TP += tp[j]
            FP = N_pred[j] - TP

            existence_ratio = existence / len(L)

            P_new = (P + N_labels) / 2
            recall = min(TP / P_new, 1)

            TPR = recall * existence_ratio
            N_new = len(labels) - P_new
            FPR = FP / N_new

            Precision = TP / N_pred[j]

            j += 1
            TF_list[j] = [TPR, FPR]
            Precision_list[j] = Precision

        TF_list[j + 1] = [1, 1]

        width = TF_list[1:, 1] - TF_list[:-1, 1]
        height = (TF_list[1:, 0] + TF_list[:-1, 0]) / 2
        auc_3d[window] = np.dot(width, height)

        width_PR = TF_list[1:-1, 0] - TF_list[:-2, 0]
        height_PR = Precision_list[1:]
        ap_3d[window] = np.dot(width_PR, height_PR)

    return sum(auc_3d) / len(window_3d), sum(ap_3d) / len(window_3d)


def random_case(rng):
    """Labels with 1 to 6 ranges (some adjacent to the ends, some close together), scores with ties."""
    n = int(rng.integers(20, 400))
    labels = np.zeros(n, dtype=int)
    for _ in range(int(rng.integers(1, 7))):
        length = int(rng.integers(1, max(2, n // 8)))
        start = int(rng.integers(0, n - length + 1))
        labels[start:start + length] = 1
    if labels.sum() == n:
        labels[0] = 0
    # Scores that track the labels with noise, some rounded to make ties.
    scores = labels * rng.uniform(0, 1.5) + rng.normal(0, 1, n)
    if rng.uniform() < 0.5:
        scores = np.round(scores, 1)
    buffer = int(rng.integers(0, 40))
    thresholds = int(rng.choice([250, 250, 50, 7]))
    return labels, scores.astype(float), buffer, thresholds


def main():
    rng = np.random.default_rng(2022)
    with open(sys.argv[1], "w") as out:
        for _ in range(50):
            labels, scores, buffer, thresholds = random_case(rng)
            roc, pr = range_auc_volume_opt(labels, scores, buffer, thresholds)
            out.write(f"{len(labels)} {buffer} {thresholds}\n")
            out.write(" ".join(str(v) for v in labels) + "\n")
            out.write(" ".join(repr(float(v)) for v in scores) + "\n")
            out.write(f"{roc!r} {pr!r}\n")


if __name__ == "__main__":
    main()
