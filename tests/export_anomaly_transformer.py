#!/usr/bin/env python3
"""Fixtures for adx's Anomaly Transformer parity test, from the Python port of the authors' reference
(thuml/Anomaly-Transformer: model/AnomalyTransformer.py, model/attn.py, model/embed.py, and the
criterion and validation losses of solver.py) that adx's speed benchmark also runs
(examples/benchmarks/at_reference.py), here in float64 on random weights. Needs only python3-torch.

  export_anomaly_transformer.py OUT_FILE

OUT_FILE holds {"x", the network's parameters under adx's names, "reconstruction", "series.<l>",
"prior.<l>" (row-normalised, as solver.py uses it), "criterion" (temperature 50), "loss1", "loss2"
(solver.py's vali() losses with k = 3)}. The port differs from the reference only where the reference
is tied to CUDA and in dropping the attention layer's unused LayerNorm; here the position code is
rebuilt in float64 (the reference builds it in float32).
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "benchmarks"))
from at_reference import AnomalyTransformer, criterion, my_kl_loss, normalized  # noqa: E402


def adx_names(model):
    """The reference's parameters under adx's names (its 1x1 convolutions are adx's linear layers)."""
    renamed = {"token_embedding.weight": model.embedding.token.weight,
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
    position = torch.arange(0, 5000, dtype=torch.float64).unsqueeze(1)
    div = (torch.arange(0, d_model, 2, dtype=torch.float64) * -(math.log(10000.0) / d_model)).exp()
    model.embedding.pe[0, :, 0::2] = torch.sin(position * div)
    model.embedding.pe[0, :, 1::2] = torch.cos(position * div)
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
        normalised = [normalized(p, win_size) for p in prior]
        for l in range(layers):
            fixtures[f"series.{l}"] = series[l]
            fixtures[f"prior.{l}"] = normalised[l]
        fixtures["criterion"] = criterion(model, x, win_size, temperature)
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
