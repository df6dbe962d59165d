#!/usr/bin/env python3
"""Fixtures for adx's Anomaly Transformer parity test, from a port of the authors' reference
(thuml/Anomaly-Transformer: model/AnomalyTransformer.py, model/attn.py, model/embed.py, and the
criterion and validation losses of solver.py), run in float64 on random weights. Needs only python3-torch.

  export_anomaly_transformer.py OUT_FILE

OUT_FILE holds {"x", the network's parameters under adx's names, "reconstruction", "series.<l>",
"prior.<l>" (row-normalised, as solver.py uses it), "criterion" (temperature 50), "loss1", "loss2"
(solver.py's vali() losses with k = 3)}. The port differs from the reference only where the reference
is tied to CUDA (the distance matrix is built on the input's device), in dropping the attention
layer's unused LayerNorm, and in building the position code in float64.
"""
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class AnomalyAttention(nn.Module):
    def __init__(self, win_size, attention_dropout=0.0):
        super().__init__()
        self.dropout = nn.Dropout(attention_dropout)
        self.distances = torch.zeros((win_size, win_size))
        for i in range(win_size):
            for j in range(win_size):
                self.distances[i][j] = abs(i - j)

    def forward(self, queries, keys, values, sigma):
        B, L, H, E = queries.shape
        scale = 1. / math.sqrt(E)
        scores = torch.einsum("blhe,bshe->bhls", queries, keys)
        attn = scale * scores
        sigma = sigma.transpose(1, 2)  # B L H -> B H L
        window_size = attn.shape[-1]
        sigma = torch.sigmoid(sigma * 5) + 1e-5
        sigma = torch.pow(3, sigma) - 1
        sigma = sigma.unsqueeze(-1).repeat(1, 1, 1, window_size)  # B H L L
        prior = self.distances.to(sigma).unsqueeze(0).unsqueeze(0).repeat(sigma.shape[0], sigma.shape[1], 1, 1)
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
        queries = self.query_projection(x).view(B, L, H, -1)
        keys = self.key_projection(x).view(B, L, H, -1)
        values = self.value_projection(x).view(B, L, H, -1)
        sigma = self.sigma_projection(x).view(B, L, H)
        out, series, prior, sigma = self.inner_attention(queries, keys, values, sigma)
        return self.out_projection(out.view(B, L, -1)), series, prior, sigma


class EncoderLayer(nn.Module):
    def __init__(self, attention, d_model, d_ff, dropout=0.0):
        super().__init__()
        self.attention = attention
        self.conv1 = nn.Conv1d(in_channels=d_model, out_channels=d_ff, kernel_size=1)
        self.conv2 = nn.Conv1d(in_channels=d_ff, out_channels=d_model, kernel_size=1)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation = F.gelu

    def forward(self, x):
        new_x, attn, mask, sigma = self.attention(x)
        x = x + self.dropout(new_x)
        y = x = self.norm1(x)
        y = self.dropout(self.activation(self.conv1(y.transpose(-1, 1))))
        y = self.dropout(self.conv2(y).transpose(-1, 1))
        return self.norm2(x + y), attn, mask, sigma


class AnomalyTransformer(nn.Module):
    def __init__(self, win_size, enc_in, d_model, n_heads, e_layers, d_ff):
        super().__init__()
        self.token_conv = nn.Conv1d(enc_in, d_model, kernel_size=3, padding=1, padding_mode="circular", bias=False)
        nn.init.kaiming_normal_(self.token_conv.weight, mode="fan_in", nonlinearity="leaky_relu")
        # The reference builds the position code in float32; this float64 port builds it in float64.
        pe = torch.zeros(5000, d_model).double()
        position = torch.arange(0, 5000).double().unsqueeze(1)
        div_term = (torch.arange(0, d_model, 2).double() * -(math.log(10000.0) / d_model)).exp()
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0))
        self.layers = nn.ModuleList([
            EncoderLayer(AttentionLayer(AnomalyAttention(win_size), d_model, n_heads), d_model, d_ff)
            for _ in range(e_layers)])
        self.norm = nn.LayerNorm(d_model)
        self.projection = nn.Linear(d_model, enc_in, bias=True)

    def forward(self, x):
        h = self.token_conv(x.permute(0, 2, 1)).transpose(1, 2) + self.pe[:, :x.size(1)]
        series_list, prior_list = [], []
        for layer in self.layers:
            h, series, prior, _ = layer(h)
            series_list.append(series)
            prior_list.append(prior)
        return self.projection(self.norm(h)), series_list, prior_list


def my_kl_loss(p, q):
    res = p * (torch.log(p + 0.0001) - torch.log(q + 0.0001))
    return torch.mean(torch.sum(res, dim=-1), dim=1)


def adx_names(model):
    """The reference's parameters under adx's names (its 1x1 convolutions are adx's linear layers)."""
    renamed = {"token_embedding.weight": model.token_conv.weight,
               "final_norm.weight": model.norm.weight, "final_norm.bias": model.norm.bias,
               "projection.weight": model.projection.weight, "projection.bias": model.projection.bias}
    for l, layer in enumerate(model.layers):
        a = layer.attention
        for ours, theirs in [("query", a.query_projection), ("key", a.key_projection), ("value", a.value_projection),
                             ("sigma", a.sigma_projection), ("out", a.out_projection), ("norm1", layer.norm1),
                             ("norm2", layer.norm2)]:
            renamed[f"layers.{l}.{ours}.weight"] = theirs.weight
            renamed[f"layers.{l}.{ours}.bias"] = theirs.bias
        renamed[f"layers.{l}.ff1.weight"] = layer.conv1.weight.squeeze(-1)
        renamed[f"layers.{l}.ff1.bias"] = layer.conv1.bias
        renamed[f"layers.{l}.ff2.weight"] = layer.conv2.weight.squeeze(-1)
        renamed[f"layers.{l}.ff2.bias"] = layer.conv2.bias
    return {k: v.detach().clone() for k, v in renamed.items()}


def main(out):
    torch.manual_seed(11)
    win_size, features, d_model, heads, layers, d_ff = 16, 3, 16, 2, 2, 24
    temperature, k = 50, 3.0
    model = AnomalyTransformer(win_size, features, d_model, heads, layers, d_ff).double().eval()
    # Non-default LayerNorm affine terms, so that a swapped or missing one shows.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    x = torch.randn(4, win_size, features, dtype=torch.float64)
    fixtures = {"x": x}
    fixtures.update(adx_names(model))
    with torch.no_grad():
        output, series, prior = model(x)
        fixtures["reconstruction"] = output
        normalised = [p / torch.unsqueeze(torch.sum(p, dim=-1), dim=-1).repeat(1, 1, 1, win_size) for p in prior]
        for l in range(layers):
            fixtures[f"series.{l}"] = series[l]
            fixtures[f"prior.{l}"] = normalised[l]
        # solver.py test(): the criterion.
        loss = torch.mean((x - output) ** 2, dim=-1)
        series_loss = sum(my_kl_loss(series[u], normalised[u]) * temperature for u in range(layers))
        prior_loss = sum(my_kl_loss(normalised[u], series[u]) * temperature for u in range(layers))
        fixtures["criterion"] = torch.softmax((-series_loss - prior_loss), dim=-1) * loss
        # solver.py vali(): the two phases' losses.
        series_loss = sum(torch.mean(my_kl_loss(series[u], normalised[u])) +
                          torch.mean(my_kl_loss(normalised[u], series[u])) for u in range(layers)) / layers
        prior_loss = sum(torch.mean(my_kl_loss(normalised[u], series[u])) +
                         torch.mean(my_kl_loss(series[u], normalised[u])) for u in range(layers)) / layers
        rec_loss = F.mse_loss(output, x)
        fixtures["loss1"] = (rec_loss - k * series_loss).reshape(1)
        fixtures["loss2"] = (rec_loss + k * prior_loss).reshape(1)
    torch.save(fixtures, out)


if __name__ == "__main__":
    main(sys.argv[1])
