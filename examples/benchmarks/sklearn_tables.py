#!/usr/bin/python3
"""Writes scikit-learn's bundled tables as one-class tabular sets for tabular_benchmark.

The data ships inside scikit-learn (Debian: python3-sklearn), so nothing is downloaded and nothing is
kept in this repository: breast cancer (Wisconsin diagnostic, 569 x 30; benign is normal, malignant
the anomaly), wine (178 x 13, one class normal in turn) and digits (1,797 x 64, 8 x 8 images as rows,
one digit normal in turn). For each set and normal class, 70% of the normal rows (a seeded shuffle)
are the training set; the test set is the other 30% and every row of the other classes.

    /usr/bin/python3 examples/benchmarks/sklearn_tables.py OUT_DIR

writes OUT_DIR/<set>_<normal class>/{train.csv, test.csv, labels.csv} (no header; labels 1 = anomaly).
"""
import os
import sys

import numpy as np
from sklearn import datasets


def write(folder, x_train, x_test, labels):
    os.makedirs(folder, exist_ok=True)
    np.savetxt(os.path.join(folder, "train.csv"), x_train, delimiter=",", fmt="%.10g")
    np.savetxt(os.path.join(folder, "test.csv"), x_test, delimiter=",", fmt="%.10g")
    np.savetxt(os.path.join(folder, "labels.csv"), labels, fmt="%d")


def one_class(out, name, x, y, normal, seed=0):
    rng = np.random.RandomState(seed)
    normal_rows = rng.permutation(np.flatnonzero(y == normal))
    cut = int(round(0.7 * len(normal_rows)))
    train, held = normal_rows[:cut], normal_rows[cut:]
    anomalies = np.flatnonzero(y != normal)
    test = np.concatenate([held, anomalies])
    labels = np.concatenate([np.zeros(len(held), int), np.ones(len(anomalies), int)])
    write(os.path.join(out, f"{name}_{normal}"), x[train], x[test], labels)
    return len(train), len(held), len(anomalies)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    cancer = datasets.load_breast_cancer()
    print("breast_cancer", one_class(out, "breast_cancer", cancer.data, cancer.target, 1))
    wine = datasets.load_wine()
    for c in range(3):
        print("wine", c, one_class(out, "wine", wine.data, wine.target, c))
    digits = datasets.load_digits()
    for c in range(10):
        print("digits", c, one_class(out, "digits", digits.data, digits.target, c))


if __name__ == "__main__":
    main()
