#!/usr/bin/env python3
"""Fixtures for adx's DOMINANT parity test, from a port of PyGOD's reference: DOMINANTBase
(pygod/nn/dominant.py), DotProductDecoder (pygod/nn/decoder.py) and double_recon_loss
(pygod/nn/functional.py) over torch_geometric's GCN, computed with dense N x N matrices in
float64 on a small random graph. Needs only python3-torch.

  export_dominant.py OUT_FILE

OUT_FILE holds {"x", "edge_index", the network's parameters under adx's names,
"score_w0.5", "score_w0.8_sigmoid"}: the node scores for PyGOD's weight (adx's alpha)
0.5 without the structure sigmoid (PyGOD's default) and 0.8 with it.
"""
import sys

import torch


def gcn_norm(edge_index, n):
    """torch_geometric's gcn_norm, dense: A + I, then D^-1/2 (A + I) D^-1/2."""
    a = torch.zeros(n, n, dtype=torch.float64)
    a[edge_index[0], edge_index[1]] = 1
    a += torch.eye(n, dtype=torch.float64)
    d = a.sum(1).rsqrt()
    return d[:, None] * a * d[None, :]


class Conv(torch.nn.Module):
    """GCNConv: A_hat (x W) + b."""

    def __init__(self, d_in, d_out):
        super().__init__()
        self.linear = torch.nn.Linear(d_in, d_out, bias=False)
        self.bias = torch.nn.Parameter(torch.empty(d_out).uniform_(-0.1, 0.1))

    def forward(self, x, a_hat):
        return a_hat @ self.linear(x) + self.bias


class Gcn(torch.nn.Module):
    """torch_geometric.nn.GCN: widths in -> hidden ... -> out, ReLU between layers, none after the last."""

    def __init__(self, d_in, hidden, layers, d_out):
        super().__init__()
        widths = [d_in] + [hidden] * (layers - 1) + [d_out]
        self.layers = torch.nn.ModuleList(Conv(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x, a_hat):
        for i, layer in enumerate(self.layers):
            x = layer(x, a_hat)
            if i + 1 < len(self.layers):
                x = torch.relu(x)
        return x


class Dominant(torch.nn.Module):
    """DOMINANTBase: floor(L/2) encoder layers, ceil(L/2) attribute decoder layers, and the
    dot-product structure decoder on ceil(L/2) - 1 layers."""

    def __init__(self, d_in, hidden, layers):
        super().__init__()
        enc, dec = layers // 2, layers - layers // 2
        self.encoder = Gcn(d_in, hidden, enc, hidden)
        self.attribute_decoder = Gcn(hidden, hidden, dec, d_in)
        self.structure_decoder = Gcn(hidden, hidden, dec - 1, hidden)

    def forward(self, x, a_hat, sigmoid_s):
        emb = self.encoder(x, a_hat)
        x_ = self.attribute_decoder(emb, a_hat)
        h = self.structure_decoder(emb, a_hat)
        s_ = h @ h.T
        return x_, torch.sigmoid(s_) if sigmoid_s else s_


def double_recon_loss(x, x_, s, s_, weight):
    attr_error = torch.sqrt(torch.sum((x - x_) ** 2, 1))
    stru_error = torch.sqrt(torch.sum((s - s_) ** 2, 1))
    return weight * attr_error + (1 - weight) * stru_error


def main(out):
    torch.manual_seed(3)
    n, features, hidden, layers = 300, 24, 16, 4
    # Sparse binary features, as bag-of-words graphs have, and a random graph with both directions listed.
    x = (torch.rand(n, features) < 0.15).float()
    pairs = torch.randint(n, (2, 900))
    pairs = pairs[:, pairs[0] != pairs[1]]
    edge_index = torch.unique(torch.cat([pairs, pairs.flip(0)], 1), dim=1)
    model = Dominant(features, hidden, layers)
    fixtures = {"x": x, "edge_index": edge_index}
    fixtures.update({k: v.detach().clone() for k, v in model.state_dict().items()})
    model.double()
    a_hat = gcn_norm(edge_index, n)
    s = torch.zeros(n, n, dtype=torch.float64)  # to_dense_adj
    s[edge_index[0], edge_index[1]] = 1
    with torch.no_grad():
        for weight, sigmoid_s, key in [(0.5, False, "score_w0.5"), (0.8, True, "score_w0.8_sigmoid")]:
            x_, s_ = model(x.double(), a_hat, sigmoid_s)
            fixtures[key] = double_recon_loss(x.double(), x_, s, s_, weight)
    torch.save(fixtures, out)


if __name__ == "__main__":
    main(sys.argv[1])
