#!/usr/bin/env python3
"""Reference Deep SVDD and GANomaly in Python/PyTorch for adx's image benchmark.

The models, settings and arithmetic match adx's one-vs-rest Fashion-MNIST run:

deep_svdd  LeNet 1-8-4 (5x5 convs, BatchNorm without affine, leaky ReLU, 2x2 max
           pool, dense 196 -> 32), every layer bias-free; mirrored decoder for
           autoencoder pretraining (Adam 1e-3, wd 5e-7, batch 128); center =
           mean of the initial forward pass with entries near 0 pushed to
           +-0.1; one-class training (Adam 1e-4, wd 5e-7, batch 128); global
           contrast normalisation (L1) + min-max fitted on the training class.
ganomaly   DCGAN encoder -> decoder -> encoder and discriminator (width 64,
           latent 100, 32 x 32 input: 28 x 28 images in [-1, 1] padded with -1),
           Adam 2e-4 betas (0.5, 0.999), batch 64, losses adv 1 / con 50 /
           enc 1, the discriminator trained on the generator's detached output
           and re-initialised when its loss falls below 1e-5; per-pixel min-max.

Two ways of feeding batches are timed, each from raw pixels (preprocessing
is inside the timings, as in adx's fit and score):
  dataloader  torch DataLoader over a TensorDataset, as the reference code bases do
  tensor      plain slicing of a permuted tensor
Prints one JSON line per run.
"""
import argparse, json, os, sys, time
import torch
import torch.nn.functional as F
from torch import nn

from fmnist_common import auroc, batches, one_vs_rest


# ---------------------------------------------------------------- Deep SVDD
class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(8, eps=1e-4, affine=False)
        self.conv2 = nn.Conv2d(8, 4, 5, padding=2, bias=False)
        self.bn2 = nn.BatchNorm2d(4, eps=1e-4, affine=False)
        self.fc = nn.Linear(4 * 7 * 7, 32, bias=False)

    def forward(self, x):
        x = F.max_pool2d(F.leaky_relu(self.bn1(self.conv1(x)), 0.01), 2)
        x = F.max_pool2d(F.leaky_relu(self.bn2(self.conv2(x)), 0.01), 2)
        return self.fc(x.flatten(1))


class LeNetDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32, 4 * 7 * 7, bias=False)
        self.conv0 = nn.Conv2d(4, 8, 5, padding=2, bias=False)
        self.bn0 = nn.BatchNorm2d(8, eps=1e-4, affine=False)
        self.conv1 = nn.Conv2d(8, 8, 5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(8, eps=1e-4, affine=False)
        self.out = nn.Conv2d(8, 1, 5, padding=2, bias=False)

    def forward(self, z):
        x = F.leaky_relu(self.fc(z), 0.01).reshape(-1, 4, 7, 7)
        x = F.leaky_relu(self.bn0(self.conv0(F.interpolate(x, size=(14, 14)))), 0.01)
        x = F.leaky_relu(self.bn1(self.conv1(F.interpolate(x, size=(28, 28)))), 0.01)
        return self.out(x)


def gcn_l1(x):
    x = x - x.mean(dim=(1, 2, 3), keepdim=True)
    return x / x.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)


def deep_svdd(mode, args, raw_train, raw_test, labels):
    encoder, decoder = LeNet(), LeNetDecoder()
    t0 = time.perf_counter()
    g = gcn_l1(raw_train)
    lo, hi = g.min(), g.max()
    x = (g - lo) / (hi - lo)
    params = list(encoder.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, weight_decay=5e-7)
    encoder.train(); decoder.train()
    for _ in range(args.pretrain_epochs):
        for b in batches(mode, x, 128):
            opt.zero_grad()
            loss = ((decoder(encoder(b)) - b) ** 2).mean()
            loss.backward()
            opt.step()
    encoder.eval()
    with torch.no_grad():
        c = torch.cat([encoder(x[i:i + 2048]).double() for i in range(0, x.shape[0], 2048)]).mean(0).float()
    c[(c.abs() < 0.1) & (c < 0)] = -0.1
    c[(c.abs() < 0.1) & (c >= 0)] = 0.1
    opt = torch.optim.Adam(encoder.parameters(), lr=1e-4, weight_decay=5e-7)
    encoder.train()
    for _ in range(args.epochs):
        for b in batches(mode, x, 128):
            opt.zero_grad()
            loss = ((encoder(b) - c) ** 2).sum(1).mean()
            loss.backward()
            opt.step()
    train_s = time.perf_counter() - t0
    encoder.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        xt = (gcn_l1(raw_test) - lo) / (hi - lo)
        scores = torch.cat([((encoder(xt[i:i + 2048]) - c) ** 2).sum(1) for i in range(0, xt.shape[0], 2048)])
    return train_s, time.perf_counter() - t0, scores


# ---------------------------------------------------------------- GANomaly
class DcganEncoder(nn.Module):
    def __init__(self, isize, nc, out, width):
        super().__init__()
        layers = [nn.Conv2d(nc, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2)]
        size = isize // 2
        while size > 4:
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2)]
            width *= 2
            size //= 2
        self.features = nn.Sequential(*layers)
        self.final = nn.Conv2d(width, out, 4, 1, 0, bias=False)

    def forward(self, x):
        return self.final(self.features(x))


def dcgan_decoder(isize, nc, nz, width):
    w, size = width // 2, 4
    while size != isize:
        w, size = w * 2, size * 2
    layers = [nn.ConvTranspose2d(nz, w, 4, 1, 0, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
    size = 4
    while size < isize // 2:
        layers += [nn.ConvTranspose2d(w, w // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(w // 2), nn.ReLU()]
        w, size = w // 2, size * 2
    layers += [nn.ConvTranspose2d(w, nc, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def dcgan_init(module):
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.weight.data.normal_(0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.normal_(1.0, 0.02)
            m.bias.data.zero_()


def ganomaly(mode, args, raw_train, raw_test, labels):
    isize, nz, width = 32, 100, args.width
    enc1, dec, enc2 = DcganEncoder(isize, 1, nz, width), dcgan_decoder(isize, 1, nz, width), DcganEncoder(isize, 1, nz, width)
    disc = DcganEncoder(isize, 1, 1, width)
    for m in (enc1, dec, enc2, disc):
        dcgan_init(m)
    g_params = list(enc1.parameters()) + list(dec.parameters()) + list(enc2.parameters())
    opt_g = torch.optim.Adam(g_params, lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def to_input(raw, lo, scale):
        return F.pad(((raw - lo) * scale) * 2 - 1, (2, 2, 2, 2), value=-1.0)

    t0 = time.perf_counter()
    lo, hi = raw_train.min(0).values, raw_train.max(0).values
    scale = torch.where(hi - lo > 1e-12, 1.0 / (hi - lo).clamp_min(1e-12), torch.ones_like(hi))
    x_all = to_input(raw_train, lo, scale)
    for m in (enc1, dec, enc2, disc):
        m.train()
    for _ in range(args.epochs):
        for x in batches(mode, x_all, 64):
            z = enc1(x)
            fake = dec(z)
            z_hat = enc2(fake)
            opt_g.zero_grad()
            adv = ((disc.features(x) - disc.features(fake)) ** 2).mean()
            loss_g = adv + 50 * (fake - x).abs().mean() + ((z - z_hat) ** 2).mean()
            loss_g.backward()
            opt_g.step()
            opt_d.zero_grad()
            real_logit, fake_logit = disc(x).flatten(), disc(fake.detach()).flatten()
            loss_d = 0.5 * (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit)) +
                            F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)))
            loss_d.backward()
            opt_d.step()
            if loss_d.item() < 1e-5:
                dcgan_init(disc)
    train_s = time.perf_counter() - t0
    for m in (enc1, dec, enc2, disc):
        m.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        xt = to_input(raw_test, lo, scale)
        parts = []
        for i in range(0, xt.shape[0], 2048):
            b = xt[i:i + 2048]
            z = enc1(b)
            parts.append(((z - enc2(dec(z))) ** 2).flatten(1).mean(1))
        scores = torch.cat(parts)
    return train_s, time.perf_counter() - t0, scores


# ---------------------------------------------------------------- DRAEM
def conv_block(cin, cout, convs=2):
    layers = []
    for k in range(convs):
        layers += [nn.Conv2d(cin if k == 0 else cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def up_block(cin, cout):
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), conv_block(cin, cout, 1))


class DraemReconstructive(nn.Module):
    """ReconstructiveSubNetwork: encoder of 5 blocks (4 poolings), decoder of 4 upsamplings."""
    def __init__(self, channels, w):
        super().__init__()
        self.enc = nn.ModuleList([conv_block(channels, w), conv_block(w, 2 * w), conv_block(2 * w, 4 * w),
                                  conv_block(4 * w, 8 * w), conv_block(8 * w, 8 * w)])
        self.up = nn.ModuleList([up_block(8 * w, 8 * w), up_block(4 * w, 4 * w), up_block(2 * w, 2 * w), up_block(w, w)])
        self.db = nn.ModuleList([nn.Sequential(conv_block(8 * w, 8 * w, 1), conv_block(8 * w, 4 * w, 1)),
                                 nn.Sequential(conv_block(4 * w, 4 * w, 1), conv_block(4 * w, 2 * w, 1)),
                                 nn.Sequential(conv_block(2 * w, 2 * w, 1), conv_block(2 * w, w, 1)),
                                 conv_block(w, w)])
        self.out = nn.Conv2d(w, channels, 3, padding=1)

    def forward(self, x):
        for k, block in enumerate(self.enc):
            x = block(x if k == 0 else F.max_pool2d(x, 2))
        for up, db in zip(self.up, self.db):
            x = db(up(x))
        return self.out(x)


class DraemDiscriminative(nn.Module):
    """DiscriminativeSubNetwork: encoder of 6 blocks (5 poolings), decoder with skip connections, 2 classes."""
    def __init__(self, channels, w):
        super().__init__()
        widths = [w, 2 * w, 4 * w, 8 * w, 8 * w, 8 * w]
        self.enc = nn.ModuleList([conv_block(channels if k == 0 else widths[k - 1], widths[k]) for k in range(6)])
        self.up = nn.ModuleList([up_block(8 * w, 8 * w), up_block(8 * w, 4 * w), up_block(4 * w, 2 * w),
                                 up_block(2 * w, w), up_block(w, w)])
        self.db = nn.ModuleList([conv_block(16 * w, 8 * w), conv_block(12 * w, 4 * w), conv_block(6 * w, 2 * w),
                                 conv_block(3 * w, w), conv_block(2 * w, w)])
        self.out = nn.Conv2d(w, 2, 3, padding=1)

    def forward(self, x):
        skips = []
        for k, block in enumerate(self.enc):
            x = block(x if k == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for k, (up, db) in enumerate(zip(self.up, self.db)):
            x = db(torch.cat((up(x), skips[4 - k]), 1))
        return self.out(x)


def pasted_rectangles(images, generator):
    """A cheap stand-in for DRAEM's synthesis: half the images get a rectangle of another image, half opaque."""
    n, _, h, w = images.shape
    inputs, masks = images.clone(), torch.zeros(n, 1, h, w)
    for i in range(n):
        if torch.rand(1, generator=generator).item() < 0.5:
            continue
        rh, rw = (int(v) for v in torch.randint(h // 8, h // 2, (2,), generator=generator))
        top, left = int(torch.randint(0, h - rh, (1,), generator=generator)), int(torch.randint(0, w - rw, (1,), generator=generator))
        other = images[int(torch.randint(0, n, (1,), generator=generator))]
        patch = inputs[i, :, top:top + rh, left:left + rw]
        inputs[i, :, top:top + rh, left:left + rw] = 0.5 * patch + 0.5 * other[:, top:top + rh, left:left + rw]
        masks[i, :, top:top + rh, left:left + rw] = 1
    return inputs, masks


def draem(mode, args, raw_train, raw_test, labels):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
    from export_draem_losses import focal_loss, ssim_loss
    size = 128
    resize = lambda x: F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    channels = raw_train.shape[1]
    rec, seg = DraemReconstructive(channels, 32), DraemDiscriminative(2 * channels, 16)
    opt = torch.optim.Adam(list(rec.parameters()) + list(seg.parameters()), lr=5e-4)
    targets = resize(raw_train[:args.draem_train])
    inputs, masks = pasted_rectangles(targets, torch.Generator().manual_seed(args.seed))
    rec.train(), seg.train()
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        for idx in batches(mode, torch.arange(targets.shape[0]), 8):
            x, target, mask = inputs[idx], targets[idx], masks[idx]
            reconstruction = rec(x)
            probabilities = torch.softmax(seg(torch.cat((reconstruction, x), 1)), 1)
            loss = F.mse_loss(reconstruction, target) + ssim_loss(reconstruction, target) + focal_loss(probabilities, mask)
            opt.zero_grad()
            loss.backward()
            opt.step()
    train_s = time.perf_counter() - t0
    rec.eval(), seg.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        parts = []
        step = args.draem_score_batch
        for i in range(0, args.draem_test, step):
            x = resize(raw_test[i:min(i + step, args.draem_test)])
            anomaly = torch.softmax(seg(torch.cat((rec(x), x), 1)), 1)[:, 1:2]
            parts.append(F.avg_pool2d(anomaly, 11, stride=1, padding=5).flatten(1).amax(1))
        scores = torch.cat(parts)
    return train_s, time.perf_counter() - t0, scores


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["deep_svdd", "ganomaly", "draem"], required=True)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--normal-class", type=int, default=0)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--pretrain-epochs", type=int, default=5)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--modes", default="dataloader,tensor")
    p.add_argument("--draem-train", type=int, default=240)
    p.add_argument("--draem-test", type=int, default=1000)
    # adx scores DRAEM 16 images per pass; 64 spends most of its time in page faults here.
    p.add_argument("--draem-score-batch", type=int, default=16)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    x_train, x_test, labels = one_vs_rest(args.data, args.normal_class, (1, 28, 28))
    run = {"deep_svdd": deep_svdd, "ganomaly": ganomaly, "draem": draem}[args.model]
    for mode in args.modes.split(","):
        torch.manual_seed(args.seed)
        train_s, score_s, scores = run(mode, args, x_train, x_test, labels)
        score = float("nan") if args.model == "draem" else auroc(labels, scores.numpy())
        print(json.dumps({"mode": mode, "train_seconds": train_s, "score_seconds": score_s, "auroc": score}),
              flush=True)


if __name__ == "__main__":
    main()
