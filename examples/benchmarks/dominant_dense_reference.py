"""DOMINANT as PyGOD runs it: GCN layers with a sparse normalised adjacency, but the
structure target and reconstruction as dense N x N matrices (to_dense_adj, emb @ emb.T)
and the loss over every node and every pair. Times full-graph training and scoring on a
random graph with `edges_per_node` * N edges, under an address-space limit, so a size that
does not fit fails with an allocation error instead of swapping.

Prints one JSON line per size: {"nodes", "fits", "fit_s", "score_s"}.
"""
import argparse
import json
import resource
import time

import torch


def normalized(edge_index, n):
    e = torch.cat([edge_index, edge_index.flip(0), torch.arange(n).repeat(2, 1)], 1)
    a = torch.sparse_coo_tensor(e, torch.ones(e.size(1)), (n, n)).coalesce()
    a = torch.sparse_coo_tensor(a.indices(), torch.ones(a.indices().size(1)), (n, n)).coalesce()
    deg = torch.sparse.sum(a, 1).to_dense()
    i = a.indices()
    return torch.sparse_coo_tensor(i, deg[i[0]].rsqrt() * deg[i[1]].rsqrt(), (n, n)).coalesce()


class Gcn(torch.nn.Module):
    def __init__(self, widths):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x, adj):
        for k, layer in enumerate(self.layers):
            x = torch.sparse.mm(adj, layer(x))
            if k + 1 < len(self.layers):
                x = torch.relu(x)
        return x


class Dominant(torch.nn.Module):
    def __init__(self, features, hidden=64):
        super().__init__()
        self.encoder = Gcn([features, hidden, hidden])
        self.attr = Gcn([hidden, hidden, features])
        self.struct = Gcn([hidden, hidden])

    def forward(self, x, adj):
        # PyGOD's defaults: no activation after the encoder's last layer, no sigmoid on Z Z^T.
        h = self.encoder(x, adj)
        z = self.struct(h, adj)
        return self.attr(h, adj), z @ z.T


def scores(model, x, adj, s, alpha=0.5):
    """double_recon_loss: alpha (PyGOD's weight) weighs the attributes."""
    x_, s_ = model(x, adj)
    attribute = torch.sqrt(torch.sum((x - x_) ** 2, 1))
    structure = torch.sqrt(torch.sum((s - s_) ** 2, 1))
    return alpha * attribute + (1 - alpha) * structure


def run(n, edges_per_node, features, epochs):
    torch.manual_seed(0)
    x = torch.randn(n, features)
    edge_index = torch.randint(n, (2, edges_per_node * n))
    adj = normalized(edge_index, n)
    s = torch.zeros(n, n)  # to_dense_adj
    s[edge_index[0], edge_index[1]] = 1
    s[edge_index[1], edge_index[0]] = 1
    model = Dominant(features)
    opt = torch.optim.Adam(model.parameters(), lr=0.004)
    start = time.perf_counter()
    for _ in range(epochs):
        opt.zero_grad()
        scores(model, x, adj, s).mean().backward()
        opt.step()
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        scores(model, x, adj, s)
    return fit_s, time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", default="10000,20000,30000,50000,100000")
    ap.add_argument("--edges-per-node", type=int, default=10)
    ap.add_argument("--features", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-gib", type=float, default=20)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    limit = int(a.memory_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for n in [int(v) for v in a.nodes.split(",")]:
        try:
            fit_s, score_s = run(n, a.edges_per_node, a.features, a.epochs)
            print(json.dumps({"mode": "dense", "nodes": n, "fits": 1, "fit_s": fit_s, "score_s": score_s}), flush=True)
        except (RuntimeError, MemoryError) as e:
            print(json.dumps({"mode": "dense", "nodes": n, "fits": 0, "fit_s": 0, "score_s": 0,
                              "error": str(e).splitlines()[0][:120]}), flush=True)
            break


if __name__ == "__main__":
    main()
