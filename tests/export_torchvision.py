#!/usr/bin/env python3
"""Writes torchvision's randomly initialised resnet18 and wide_resnet50_2 for
adx's backbone parity test, in every format adx reads, plus a fixed input and
torchvision's own layer outputs for it.

  export_torchvision.py OUT_DIR

OUT_DIR/<arch>_ordered.pt   torch.save(model.state_dict())        (an OrderedDict)
OUT_DIR/<arch>_dict.pt      torch.save(dict(model.state_dict()))  (resnet18 only)
OUT_DIR/<arch>_script.pt    torch.jit.trace(model).save()         (resnet18 only)
OUT_DIR/<arch>_expected.pt  {"input", "conv1", "layer1".."layer4", "logits"}
OUT_DIR/vit_b_16_ordered.pt     torch.save(model.state_dict())
OUT_DIR/vit_b_16_expected.pt    {"input", "block1".."block12" (patch tokens as maps), "logits"} at 224 px,
                                and the same with suffix "_112" for a 112 px input through torchvision's
                                interpolate_embeddings ("pos_embedding_112")
"""
import os, sys
import torch
import torchvision

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
for arch in ["resnet18", "wide_resnet50_2"]:
    model = getattr(torchvision.models, arch)(weights=None)
    # Non-trivial BatchNorm statistics, so that eval-mode normalisation is checked too.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    model.eval()
    torch.save(model.state_dict(), f"{out}/{arch}_ordered.pt")
    x = torch.randn(2, 3, 64, 64)
    if arch == "resnet18":
        torch.save(dict(model.state_dict()), f"{out}/{arch}_dict.pt")
        torch.jit.trace(model, x).save(f"{out}/{arch}_script.pt")
    expected = {"input": x}
    with torch.no_grad():
        y = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        expected["conv1"] = y
        for name in ["layer1", "layer2", "layer3", "layer4"]:
            y = getattr(model, name)(y)
            expected[name] = y
        expected["logits"] = model(x)
    torch.save(expected, f"{out}/{arch}_expected.pt")

from torchvision.models.vision_transformer import interpolate_embeddings


def vit_features(model, x, suffix):
    """Every block's patch tokens as N x C x h x w maps, and the logits, as torchvision computes them."""
    n, h, w = x.size(0), x.size(2) // 16, x.size(3) // 16
    found = {}
    with torch.no_grad():
        tokens = model._process_input(x)
        tokens = torch.cat([model.class_token.expand(n, -1, -1), tokens], dim=1)
        tokens = tokens + model.encoder.pos_embedding
        for i, layer in enumerate(model.encoder.layers):
            tokens = layer(tokens)
            found[f"block{i + 1}{suffix}"] = tokens[:, 1:].transpose(1, 2).reshape(n, -1, h, w)
        found[f"logits{suffix}"] = model(x)
    return found


vit = torchvision.models.vit_b_16(weights=None)
with torch.no_grad():
    # torchvision zero-initialises the head; random LayerNorms and head make the check cover them.
    for m in vit.modules():
        if isinstance(m, torch.nn.LayerNorm):
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.1, 0.1)
    vit.heads.head.weight.normal_(0, 0.02)
    vit.heads.head.bias.uniform_(-0.1, 0.1)
vit.eval()
torch.save(vit.state_dict(), f"{out}/vit_b_16_ordered.pt")
expected = {"input": torch.randn(2, 3, 224, 224)}
expected.update(vit_features(vit, expected["input"], ""))
small = torchvision.models.vit_b_16(weights=None, image_size=112)
small.load_state_dict(interpolate_embeddings(112, 16, vit.state_dict()))
small.eval()
expected["input_112"] = torch.randn(2, 3, 112, 112)
expected["pos_embedding_112"] = small.encoder.pos_embedding.detach().clone()
expected.update(vit_features(small, expected["input_112"], "_112"))
torch.save(expected, f"{out}/vit_b_16_expected.pt")
print("exported to", out)
