#!/usr/bin/env python3
"""Writes torchvision's randomly initialised resnet18 and wide_resnet50_2 for
adx's backbone parity test, in every format adx reads, plus a fixed input and
torchvision's own layer outputs for it.

  export_torchvision.py OUT_DIR

OUT_DIR/<arch>_ordered.pt   torch.save(model.state_dict())        (an OrderedDict)
OUT_DIR/<arch>_dict.pt      torch.save(dict(model.state_dict()))  (resnet18 only)
OUT_DIR/<arch>_script.pt    torch.jit.trace(model).save()         (resnet18 only)
OUT_DIR/<arch>_expected.pt  {"input", "conv1", "layer1".."layer4", "logits"}
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
print("exported to", out)
