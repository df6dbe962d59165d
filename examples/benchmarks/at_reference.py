"""The Anomaly Transformer in Python/PyTorch, written after the authors' reference code
(thuml/Anomaly-Transformer: model/attn.py, model/embed.py, model/AnomalyTransformer.py and
the training step and test criterion of solver.py), timed on random windows.

Modes:
  reference: windows from a torch DataLoader (as the reference's SegLoader), and the two
             backward passes of the minimax step (loss1.backward(retain_graph=True); loss2.backward()).
  tensor:    the same step on pre-sliced tensor batches (no DataLoader).
  fused:     tensor batches, and the algebra adx uses: one backward pass of loss1 + loss2
             (the same gradients), the row-normalised prior as one softmax, and both KL
             directions in one pass. What remains between this and adx is the runtime.

Prints one JSON line per mode: training windows/s and scoring steps/s.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class AnomalyAttention(nn.Module):
    def __init__(self, win_size, attention_dropout=0.0):
        super().__init__()
        self.dropout = nn.Dropout(attention_dropout)
        idx = torch.arange(win_size, dtype=torch.float32)
        self.distances = (idx[:, None] - idx[None, :]).abs()

    def forward(self, queries, keys, values, sigma):
        B, L, H, E = queries.shape
        scale = 1.0 / math.sqrt(E)
        attn = scale * torch.einsum("blhe,bshe->bhls", queries, keys)
        sigma = sigma.transpose(1, 2)  # B L H -> B H L
        window_size = attn.shape[-1]
        sigma = torch.sigmoid(sigma * 5) + 1e-5
        sigma = torch.pow(3, sigma) - 1
        sigma = sigma.unsqueeze(-1).repeat(1, 1, 1, window_size)  # B H L L
        prior = self.distances.unsqueeze(0).unsqueeze(0).repeat(sigma.shape[0], sigma.shape[1], 1, 1)
        prior = 1.0 / (math.sqrt(2 * math.pi) * sigma) * torch.exp(-prior ** 2 / 2 / (sigma ** 2))
        series = self.dropout(torch.softmax(attn, dim=-1))
        V = torch.einsum("bhls,bshd->blhd", series, values)
        return V.contiguous(), series, prior, sigma


class AttentionLayer(nn.Module):
    def __init__(self, attention, d_model, n_heads):
        super().__init__()
        d_keys = d_model // n_heads
        self.inner_attention = attention
        self.query_projection = nn.Linear(d_model, d_keys * n_heads)
        self.key_projection = nn.Linear(d_model, d_keys * n_heads)
        self.value_projection = nn.Linear(d_model, d_keys * n_heads)
        self.sigma_projection = nn.Linear(d_model, n_heads)
        self.out_projection = nn.Linear(d_keys * n_heads, d_model)
        self.n_heads = n_heads

    def forward(self, x):
        B, L, _ = x.shape
        H = self.n_heads
        q = self.query_projection(x).view(B, L, H, -1)
        k = self.key_projection(x).view(B, L, H, -1)
        v = self.value_projection(x).view(B, L, H, -1)
        sigma = self.sigma_projection(x).view(B, L, H)
        out, series, prior, sigma = self.inner_attention(q, k, v, sigma)
        return self.out_projection(out.view(B, L, -1)), series, prior, sigma


class EncoderLayer(nn.Module):
    def __init__(self, attention, d_model, d_ff, dropout):
        super().__init__()
        self.attention = attention
        self.conv1 = nn.Conv1d(d_model, d_ff, kernel_size=1)
        self.conv2 = nn.Conv1d(d_ff, d_model, kernel_size=1)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        new_x, series, prior, sigma = self.attention(x)
        x = x + self.dropout(new_x)
        y = x = self.norm1(x)
        y = self.dropout(F.gelu(self.conv1(y.transpose(-1, 1))))
        y = self.dropout(self.conv2(y).transpose(-1, 1))
        return self.norm2(x + y), series, prior, sigma


class DataEmbedding(nn.Module):
    def __init__(self, c_in, d_model, max_len=5000, dropout=0.0):
        super().__init__()
        self.token = nn.Conv1d(c_in, d_model, kernel_size=3, padding=1, padding_mode="circular", bias=False)
        nn.init.kaiming_normal_(self.token.weight, mode="fan_in", nonlinearity="leaky_relu")
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len).float().unsqueeze(1)
        div = (torch.arange(0, d_model, 2).float() * -(math.log(10000.0) / d_model)).exp()
        pe[:, 0::2] = torch.sin(position * div)
        pe[:, 1::2] = torch.cos(position * div)
        self.register_buffer("pe", pe.unsqueeze(0))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.token(x.permute(0, 2, 1)).transpose(1, 2) + self.pe[:, : x.size(1)])


class FusedAnomalyAttention(AnomalyAttention):
    """Returns the prior already row-normalised: softmax(-|i - j|^2 / (2 sigma^2))."""

    def forward(self, queries, keys, values, sigma):
        B, L, H, E = queries.shape
        attn = torch.matmul(queries.permute(0, 2, 1, 3), keys.permute(0, 2, 3, 1)) / math.sqrt(E)
        sigma = torch.pow(3, torch.sigmoid(sigma.transpose(1, 2) * 5) + 1e-5) - 1
        prior = torch.softmax(self.distances.pow(2) * (-0.5 / sigma.pow(2)).unsqueeze(-1), dim=-1)
        series = self.dropout(torch.softmax(attn, dim=-1))
        V = torch.matmul(series, values.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)
        return V.contiguous(), series, prior, sigma


class AnomalyTransformer(nn.Module):
    def __init__(self, win_size, c_in, d_model, n_heads, e_layers, d_ff, dropout=0.0, fused=False):
        super().__init__()
        self.embedding = DataEmbedding(c_in, d_model, dropout=dropout)
        self.layers = nn.ModuleList(
            [EncoderLayer(AttentionLayer((FusedAnomalyAttention if fused else AnomalyAttention)(win_size, dropout),
                                         d_model, n_heads), d_model, d_ff, dropout)
             for _ in range(e_layers)])
        self.norm = nn.LayerNorm(d_model)
        self.projection = nn.Linear(d_model, c_in)

    def forward(self, x):
        x = self.embedding(x)
        series_list, prior_list = [], []
        for layer in self.layers:
            x, series, prior, _ = layer(x)
            series_list.append(series)
            prior_list.append(prior)
        return self.projection(self.norm(x)), series_list, prior_list


def my_kl_loss(p, q):
    res = p * (torch.log(p + 0.0001) - torch.log(q + 0.0001))
    return torch.mean(torch.sum(res, dim=-1), dim=1)


def normalized(prior, win):
    return prior / torch.unsqueeze(torch.sum(prior, dim=-1), dim=-1).repeat(1, 1, 1, win)


def train_step(model, optimizer, x, k, win):
    optimizer.zero_grad()
    output, series, prior = model(x)
    series_loss = 0.0
    prior_loss = 0.0
    for u in range(len(prior)):
        p = normalized(prior[u], win)
        series_loss += torch.mean(my_kl_loss(series[u], p.detach())) + torch.mean(my_kl_loss(p.detach(), series[u]))
        prior_loss += torch.mean(my_kl_loss(p, series[u].detach())) + torch.mean(my_kl_loss(series[u].detach(), p))
    series_loss = series_loss / len(prior)
    prior_loss = prior_loss / len(prior)
    rec_loss = F.mse_loss(output, x)
    loss1 = rec_loss - k * series_loss
    loss2 = rec_loss + k * prior_loss
    loss1.backward(retain_graph=True)
    loss2.backward()
    optimizer.step()


def sym_kl(p, log_p, q, log_q):
    return torch.mean(torch.sum((p - q) * (log_p - log_q), dim=-1), dim=1)


def fused_train_step(model, optimizer, x, k):
    optimizer.zero_grad()
    output, series, prior = model(x)
    phase1 = phase2 = 0.0
    for s, p in zip(series, prior):
        ls, lp = torch.log(s + 1e-4), torch.log(p + 1e-4)
        phase1 = phase1 + sym_kl(s, ls, p.detach(), lp.detach()).mean()
        phase2 = phase2 + sym_kl(s.detach(), ls.detach(), p, lp).mean()
    rec = F.mse_loss(output, x)
    n = len(prior)
    ((rec - k * phase1 / n) + (rec + k * phase2 / n)).backward()
    optimizer.step()


def fused_criterion(model, x, temperature=50):
    output, series, prior = model(x)
    loss = torch.mean((x - output) ** 2, dim=-1)
    dis = 0.0
    for s, p in zip(series, prior):
        dis = dis + temperature * sym_kl(s, torch.log(s + 1e-4), p, torch.log(p + 1e-4))
    return torch.softmax(-dis, dim=-1) * loss


def criterion(model, x, win, temperature=50):
    output, series, prior = model(x)
    loss = torch.mean((x - output) ** 2, dim=-1)
    series_loss = prior_loss = 0.0
    for u in range(len(prior)):
        p = normalized(prior[u], win)
        series_loss = series_loss + my_kl_loss(series[u], p.detach()) * temperature
        prior_loss = prior_loss + my_kl_loss(p, series[u].detach()) * temperature
    metric = torch.softmax(-series_loss - prior_loss, dim=-1)
    return metric * loss


class Windows(torch.utils.data.Dataset):
    def __init__(self, series, win, step):
        self.series, self.win, self.step = series, win, step

    def __len__(self):
        return (self.series.shape[0] - self.win) // self.step + 1

    def __getitem__(self, i):
        return self.series[i * self.step: i * self.step + self.win]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=2048)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d-ff", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--score-windows", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", default="reference,tensor,fused")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    win = a.window
    train_series = torch.randn(a.windows + win - 1, a.channels)
    test_series = torch.randn(a.score_windows * win, a.channels)
    for mode in a.mode.split(","):
        fused = mode == "fused"
        model = AnomalyTransformer(win, a.channels, a.d_model, a.heads, a.layers, a.d_ff, fused=fused)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        model.train()
        if mode == "reference":
            loader = torch.utils.data.DataLoader(Windows(train_series, win, 1), batch_size=a.batch, shuffle=True)
            start = time.perf_counter()
            for x in loader:
                train_step(model, optimizer, x, 3.0, win)
        else:
            starts = torch.randperm(a.windows)
            idx = starts[:, None] + torch.arange(win)[None, :]
            start = time.perf_counter()
            for b in range(0, a.windows, a.batch):
                x = train_series[idx[b:b + a.batch]]
                fused_train_step(model, optimizer, x, 3.0) if fused else train_step(model, optimizer, x, 3.0, win)
        train_s = time.perf_counter() - start
        model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            if mode == "reference":
                for x in torch.utils.data.DataLoader(Windows(test_series, win, win), batch_size=a.batch):
                    criterion(model, x, win)
            else:
                windows = test_series.view(a.score_windows, win, a.channels)
                for b in range(0, a.score_windows, a.batch):
                    x = windows[b:b + a.batch]
                    fused_criterion(model, x) if fused else criterion(model, x, win)
        score_s = time.perf_counter() - start
        print(json.dumps({"mode": mode, "train_s": train_s, "score_s": score_s,
                          "train_windows_per_s": a.windows / train_s,
                          "score_steps_per_s": a.score_windows * win / score_s}), flush=True)


if __name__ == "__main__":
    main()
