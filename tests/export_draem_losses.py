#!/usr/bin/env python3
"""Fixtures for adx's DRAEM loss parity test: the SSIM loss and the focal loss as the authors' reference
computes them (VitjanZ/DRAEM, loss.py: FocalLoss, gaussian, create_window, ssim, SSIM; MIT), copied with
only the CUDA placement and the unused options dropped. Needs only python3-torch.

  export_draem_losses.py OUT_FILE

OUT_FILE holds, for RGB ("rgb.") and grey ("grey.") cases: "a", "b" (images in [0, 1]), "ssim_loss"
(SSIM()(a, b) = 1 - mean SSIM), "probabilities" (a softmax over 2 classes), "mask" (0/1) and "focal"
(FocalLoss()(probabilities, mask), as train_DRAEM.py calls it).
"""
import sys
from math import exp

import torch
import torch.nn.functional as F


def focal_loss(logit, target, gamma=2, smooth=1e-5):
    """FocalLoss.forward with apply_nonlin None, alpha None, balance_index 0, size_average True."""
    num_class = logit.shape[1]
    if logit.dim() > 2:
        logit = logit.view(logit.size(0), logit.size(1), -1)
        logit = logit.permute(0, 2, 1).contiguous()
        logit = logit.view(-1, logit.size(-1))
    target = torch.squeeze(target, 1)
    target = target.view(-1, 1)
    alpha = torch.ones(num_class, 1)
    idx = target.cpu().long()
    one_hot_key = torch.FloatTensor(target.size(0), num_class).zero_()
    one_hot_key = one_hot_key.scatter_(1, idx, 1)
    one_hot_key = torch.clamp(one_hot_key, smooth / (num_class - 1), 1.0 - smooth)
    pt = (one_hot_key * logit).sum(1) + smooth
    logpt = pt.log()
    alpha = alpha[idx]
    alpha = torch.squeeze(alpha)
    loss = -1 * alpha * torch.pow((1 - pt), gamma) * logpt
    return loss.mean()


def gaussian(window_size, sigma):
    gauss = torch.Tensor([exp(-(x - window_size // 2) ** 2 / float(2 * sigma ** 2)) for x in range(window_size)])
    return gauss / gauss.sum()


def create_window(window_size, channel=1):
    _1D_window = gaussian(window_size, 1.5).unsqueeze(1)
    _2D_window = _1D_window.mm(_1D_window.t()).float().unsqueeze(0).unsqueeze(0)
    return _2D_window.expand(channel, 1, window_size, window_size).contiguous()


def ssim(img1, img2, window_size=11, window=None):
    max_val = 255 if torch.max(img1) > 128 else 1
    min_val = -1 if torch.min(img1) < -0.5 else 0
    l = max_val - min_val
    padd = window_size // 2
    (_, channel, height, width) = img1.size()
    mu1 = F.conv2d(img1, window, padding=padd, groups=channel)
    mu2 = F.conv2d(img2, window, padding=padd, groups=channel)
    mu1_sq = mu1.pow(2)
    mu2_sq = mu2.pow(2)
    mu1_mu2 = mu1 * mu2
    sigma1_sq = F.conv2d(img1 * img1, window, padding=padd, groups=channel) - mu1_sq
    sigma2_sq = F.conv2d(img2 * img2, window, padding=padd, groups=channel) - mu2_sq
    sigma12 = F.conv2d(img1 * img2, window, padding=padd, groups=channel) - mu1_mu2
    c1 = (0.01 * l) ** 2
    c2 = (0.03 * l) ** 2
    v1 = 2.0 * sigma12 + c2
    v2 = sigma1_sq + sigma2_sq + c2
    ssim_map = ((2 * mu1_mu2 + c1) * v1) / ((mu1_sq + mu2_sq + c1) * v2)
    return ssim_map.mean()


def ssim_loss(img1, img2, window_size=11):
    """SSIM().forward: 1 - ssim with a window for the images' channels."""
    window = create_window(window_size, img1.size(1)).type(img1.dtype)
    return 1.0 - ssim(img1, img2, window=window, window_size=window_size)


def main(out):
    torch.manual_seed(13)
    fixtures = {}
    for name, channels in [("rgb", 3), ("grey", 1)]:
        a = torch.rand(3, channels, 32, 40)
        b = (a + 0.2 * torch.randn_like(a)).clamp(0, 1)  # related images, so the SSIM is not near 0
        probabilities = torch.softmax(torch.randn(3, 2, 32, 40) * 2, 1)
        mask = (torch.rand(3, 1, 32, 40) < 0.3).float()
        fixtures.update({f"{name}.a": a, f"{name}.b": b, f"{name}.ssim_loss": ssim_loss(a, b).reshape(1),
                         f"{name}.probabilities": probabilities, f"{name}.mask": mask,
                         f"{name}.focal": focal_loss(probabilities, mask).reshape(1)})
    torch.save(fixtures, out)


if __name__ == "__main__":
    main(sys.argv[1])
