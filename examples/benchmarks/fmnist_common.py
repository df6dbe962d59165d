"""What the Python reference benchmarks share: Fashion-MNIST loading, the
two ways of feeding batches, and AUROC."""
import gzip
import numpy as np
import torch


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def one_vs_rest(data_dir, normal_class, item_shape):
    """Training images of `normal_class`, all test images, and test labels (1 = other class), in [0, 1]."""
    xtr = load_idx(f"{data_dir}/train-images-idx3-ubyte.gz").reshape((-1,) + item_shape).astype(np.float32) / 255
    ytr = load_idx(f"{data_dir}/train-labels-idx1-ubyte.gz")
    xte = load_idx(f"{data_dir}/t10k-images-idx3-ubyte.gz").reshape((-1,) + item_shape).astype(np.float32) / 255
    yte = load_idx(f"{data_dir}/t10k-labels-idx1-ubyte.gz")
    return (torch.from_numpy(np.ascontiguousarray(xtr[ytr == normal_class])), torch.from_numpy(xte),
            (yte != normal_class).astype(np.int32))


def batches(mode, x, bs):
    """One epoch of shuffled batches of at least 2 items: through a DataLoader, or by slicing a permuted tensor."""
    if mode == "dataloader":
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=bs, shuffle=True)
        return (b for (b,) in loader if b.shape[0] >= 2)
    xs = x[torch.randperm(x.shape[0])]
    return (xs[i:i + bs] for i in range(0, x.shape[0], bs) if min(bs, x.shape[0] - i) >= 2)


def auroc(labels, scores):
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(labels, scores))
