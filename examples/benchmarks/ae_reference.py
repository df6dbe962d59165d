#!/usr/bin/env python3
"""Reference autoencoder in Python/PyTorch for the adx speed benchmark.

Same model and settings as adx's benchmark run: MLP 784-128-64-32-16 (mirrored
decoder), BatchNorm/ReLU/Dropout 0.1, batch 256, Adam 1e-3, weight decay 1e-5,
min-max scaling fitted on the training class, score = per-item MSE.
Three runs are timed, each from raw pixels (the scaler's fit and application
are inside the timings, as they are in adx's fit and score):
  dataloader    the PyOD AutoEncoder way: torch DataLoader over a TensorDataset,
                torch.set_num_threads(threads)
  tensor        plain tensor slicing, torch.set_num_threads(threads)
  tensor-tuned  plain tensor slicing with torch.set_num_threads(1), which leaves
                OpenBLAS its own threads: the fastest setting found for Python here
Prints one JSON line per run.
"""
import argparse, json, time
import torch
from torch import nn

from fmnist_common import auroc, batches, one_vs_rest


def mlp(widths, dropout):
    layers = []
    for a, b in zip(widths[:-2], widths[1:-1]):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU(), nn.Dropout(dropout)]
    layers.append(nn.Linear(widths[-2], widths[-1]))
    return nn.Sequential(*layers)


class AutoEncoder(nn.Module):
    def __init__(self, d, hidden, code, dropout):
        super().__init__()
        self.encoder = mlp([d] + hidden + [code], dropout)
        self.decoder = mlp([code] + hidden[::-1] + [d], dropout)

    def forward(self, x):
        return self.decoder(self.encoder(x))


def minmax_fit(x):
    lo, hi = x.min(0).values, x.max(0).values
    scale = torch.where(hi - lo > 1e-12, 1.0 / (hi - lo).clamp_min(1e-12), torch.ones_like(hi))
    return lo, scale


def run(mode, args, raw_train, raw_test, labels):
    torch.set_num_threads(1 if mode == "tensor-tuned" else args.threads)
    torch.manual_seed(args.seed)
    model = AutoEncoder(raw_train.shape[1], [128, 64, 32], 16, 0.1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    bs = 256
    t0 = time.perf_counter()
    lo, scale = minmax_fit(raw_train)
    x_train = (raw_train - lo) * scale
    model.train()
    for _ in range(args.epochs):
        for batch in batches(mode, x_train, bs):
            opt.zero_grad()
            loss = ((model(batch) - batch) ** 2).mean()
            loss.backward()
            opt.step()
    train_s = time.perf_counter() - t0

    model.eval()
    t0 = time.perf_counter()
    x_test = (raw_test - lo) * scale
    with torch.no_grad():
        if mode == "dataloader":
            loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_test), batch_size=bs, shuffle=False)
            scores = torch.cat([((model(b) - b) ** 2).mean(1) for (b,) in loader])
        else:
            scores = torch.cat([((model(x_test[i:i + 2048]) - x_test[i:i + 2048]) ** 2).mean(1)
                                for i in range(0, x_test.shape[0], 2048)])
    score_s = time.perf_counter() - t0
    return {"mode": mode, "train_seconds": train_s, "score_seconds": score_s,
            "auroc": auroc(labels, scores.numpy())}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--normal-class", type=int, default=0)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--modes", default="dataloader,tensor,tensor-tuned")
    args = p.parse_args()
    x_train, x_test, labels = one_vs_rest(args.data, args.normal_class, (784,))
    for mode in args.modes.split(","):
        print(json.dumps(run(mode, args, x_train, x_test, labels)), flush=True)


if __name__ == "__main__":
    main()
