#!/usr/bin/env python3
"""Fixtures for adx's CoLA parity test, from a port of the authors' reference (GRAND-Lab/CoLA:
model.py's GCN, AvgReadout, Discriminator and Model; utils.py's normalize_adj; run.py's test-time batch
assembly and score), run in float64 on random weights with fixed subgraphs and a fixed node order.
Needs only python3-torch.

  export_cola.py OUT_FILE

OUT_FILE holds {"x", "edge_index", "nodes" (N x 4: node i's subgraph, node i last), "order" (the
round's shuffled node order), the model's parameters under adx's names, "scores" (per node, in node
order)}. The random-walk sampling is not ported: its random stream cannot be shared with C++, so both
sides take the same subgraphs.
"""
import sys

import torch
import torch.nn as nn


class GCN(nn.Module):
    def __init__(self, in_ft, out_ft):
        super().__init__()
        self.fc = nn.Linear(in_ft, out_ft, bias=False)
        self.act = nn.PReLU()
        self.bias = nn.Parameter(torch.FloatTensor(out_ft))
        self.bias.data.fill_(0.0)
        torch.nn.init.xavier_uniform_(self.fc.weight.data)

    def forward(self, seq, adj):
        seq_fts = self.fc(seq)
        out = torch.bmm(adj, seq_fts)
        out += self.bias
        return self.act(out)


class Discriminator(nn.Module):
    def __init__(self, n_h, negsamp_round=1):
        super().__init__()
        self.f_k = nn.Bilinear(n_h, n_h, 1)
        torch.nn.init.xavier_uniform_(self.f_k.weight.data)
        self.f_k.bias.data.fill_(0.0)
        self.negsamp_round = negsamp_round

    def forward(self, c, h_pl):
        scs = [self.f_k(h_pl, c)]
        c_mi = c
        for _ in range(self.negsamp_round):
            c_mi = torch.cat((c_mi[-2:-1, :], c_mi[:-1, :]), 0)
            scs.append(self.f_k(h_pl, c_mi))
        return torch.cat(tuple(scs))


class Model(nn.Module):
    def __init__(self, n_in, n_h):
        super().__init__()
        self.gcn = GCN(n_in, n_h)
        self.disc = Discriminator(n_h)

    def forward(self, seq1, adj):
        h_1 = self.gcn(seq1, adj)
        c = torch.mean(h_1[:, :-1, :], 1)
        h_mv = h_1[:, -1, :]
        return self.disc(c, h_mv)


def normalize_adj(adj):
    """utils.normalize_adj, dense: D^-1/2 A D^-1/2 (0 for isolated nodes)."""
    rowsum = adj.sum(1)
    d_inv_sqrt = rowsum.pow(-0.5)
    d_inv_sqrt[torch.isinf(d_inv_sqrt)] = 0.0
    return d_inv_sqrt[:, None] * adj * d_inv_sqrt[None, :]


def main(out):
    torch.manual_seed(7)
    n, ft_size, embedding, subgraph_size = 50, 8, 16, 4
    x = torch.randn(n, ft_size)
    pairs = torch.randint(n, (2, 90))
    pairs = pairs[:, pairs[0] != pairs[1]]
    edge_index = torch.unique(torch.cat([pairs, pairs.flip(0)], 1), dim=1)
    dense = torch.zeros(n, n, dtype=torch.float64)
    dense[edge_index[0], edge_index[1]] = 1
    # Subgraphs: up to 3 distinct neighbours, then neighbours' neighbours, repeated when too few
    # (as generate_rwr_subgraph repeats), the target last.
    subgraphs = []
    for i in range(n):
        found = []
        for j in dense[i].nonzero().flatten().tolist():
            if j not in found and len(found) < subgraph_size - 1:
                found.append(j)
        for j in list(found):
            for k in dense[j].nonzero().flatten().tolist():
                if k != i and k not in found and len(found) < subgraph_size - 1:
                    found.append(k)
        if not found:
            found = [i]
        subgraphs.append((found * subgraph_size)[:subgraph_size - 1] + [i])
    model = Model(ft_size, embedding)
    with torch.no_grad():  # non-zero biases and PReLU slope, so that a missing or misplaced one shows
        model.gcn.bias.uniform_(-0.3, 0.3)
        model.disc.f_k.bias.fill_(0.1)
        model.gcn.act.weight.fill_(0.2)
    fixtures = {"x": x, "edge_index": edge_index, "nodes": torch.tensor(subgraphs),
                "gcn.weight": model.gcn.fc.weight.detach().clone(), "gcn_bias": model.gcn.bias.detach().clone(),
                "activation.weight": model.gcn.act.weight.detach().clone(),
                "discriminator.weight": model.disc.f_k.weight.detach().clone(),
                "discriminator.bias": model.disc.f_k.bias.detach().clone()}
    model.double()
    features = x.double()[None]
    adj = (normalize_adj(dense) + torch.eye(n, dtype=torch.float64))[None]
    # run.py's test round, one batch of every node in a shuffled order.
    idx = torch.randperm(n).tolist()
    cur_batch_size = len(idx)
    added_adj_zero_row = torch.zeros((cur_batch_size, 1, subgraph_size), dtype=torch.float64)
    added_adj_zero_col = torch.zeros((cur_batch_size, subgraph_size + 1, 1), dtype=torch.float64)
    added_adj_zero_col[:, -1, :] = 1.
    added_feat_zero_row = torch.zeros((cur_batch_size, 1, ft_size), dtype=torch.float64)
    ba, bf = [], []
    for i in idx:
        ba.append(adj[:, subgraphs[i], :][:, :, subgraphs[i]])
        bf.append(features[:, subgraphs[i], :])
    ba = torch.cat(ba)
    ba = torch.cat((ba, added_adj_zero_row), dim=1)
    ba = torch.cat((ba, added_adj_zero_col), dim=2)
    bf = torch.cat(bf)
    bf = torch.cat((bf[:, :-1, :], added_feat_zero_row, bf[:, -1:, :]), dim=1)
    with torch.no_grad():
        logits = torch.sigmoid(torch.squeeze(model(bf, ba)))
    ano_score = -(logits[:cur_batch_size] - logits[cur_batch_size:])
    scores = torch.zeros(n, dtype=torch.float64)
    scores[idx] = ano_score
    fixtures["order"] = torch.tensor(idx)
    fixtures["scores"] = scores
    torch.save(fixtures, out)


if __name__ == "__main__":
    main(sys.argv[1])
