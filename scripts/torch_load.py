#!/usr/bin/env python3
"""Load an ssvae checkpoint into PyTorch and measure its test error there.

    python scripts/torch_load.py RUN_OR_CHECKPOINT_DIR [--data-dir DIR] [--json]

The torch.nn.Modules below mirror ssvae's networks (src/models/arch.rs, m2.rs, vae.rs, m1.rs,
classifier.rs) with the same parameter names, so that `load_state_dict(strict=True)` takes
model.safetensors as it is: no missing, no unexpected and no reshaped tensor. Supported: m2,
m1, vae and classifier, each with --arch mlp or conv (vae has no classifier: it is loaded, not
evaluated); other models are refused by name.

The test error is that of `ssvae eval`: argmax of q(y|x) over the dataset's test set, read
from the same files with the same scaling (pixels / 255, digits / 16). Both sides compute in
f32, but in a different order of summation, so logits agree to rounding (~1e-6 relative), not
bit for bit: an image whose two best classes are that close could be counted differently. The
script prints the number of misclassified images; tests/torch_roundtrip.rs requires the same
number as `ssvae eval`.

Only torch and the standard library are needed (the safetensors header is read by hand: eight
bytes of little-endian length, a JSON header, then the raw little-endian tensors). A format-1
checkpoint (conv biases stored as [1, C, 1, 1]) is read too: those biases are viewed as [C].
"""

import argparse
import gzip
import json
import os
import struct
import sys
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

# src/models/arch.rs: the conv trunk's and decoder's dense width, and the two convs' channels.
CONV_HIDDEN = 256
CONV_CHANNELS = (32, 64)
# src/models/vae.rs: hidden layers of the MLP encoder and decoder of a VAE.
VAE_MLP_LAYERS = 2
SUPPORTED = ("m2", "m1", "vae", "classifier")

ACTIVATIONS = {"relu": F.relu, "softplus": F.softplus, "tanh": torch.tanh, "sigmoid": torch.sigmoid}


def fail(msg):
    sys.exit(f"error: {msg}")


# --- checkpoint files ---------------------------------------------------------------------------


def resolve(path):
    """The checkpoint directory of a run directory (via LATEST) or of a checkpoint directory."""
    d = Path(path)
    if (d / "config.json").is_file():
        return d
    latest = d / "LATEST"
    if not latest.is_file():
        fail(f"{d}: not a checkpoint: neither config.json nor LATEST is here")
    return d / latest.read_text().strip()


def read_safetensors(path):
    """(tensors by name, metadata) of an f32 safetensors file."""
    raw = path.read_bytes()
    if len(raw) < 8:
        fail(f"{path}: truncated safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n :]
    tensors = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            fail(f"{path}: tensor {name!r} is {info['dtype']}, expected F32")
        start, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[start:end]), dtype=torch.float32)
        tensors[name] = t.reshape(info["shape"])
    return tensors, meta


# --- data ------------------------------------------------------------------------------------------


def default_data_dir():
    """As ssvae's: $SSVAE_DATA_DIR, else ../shared/datasets when it exists, else ./datasets."""
    env = os.environ.get("SSVAE_DATA_DIR")
    if env:
        return Path(env)
    shared = Path("../shared/datasets")
    return shared if shared.is_dir() else Path("datasets")


def read_maybe_gz(dir_, base):
    for p in (dir_ / base, dir_ / f"{base}.gz"):
        if p.is_file():
            b = p.read_bytes()
            return gzip.decompress(b) if b[:2] == b"\x1f\x8b" else b
    fail(f"neither {dir_ / base} nor {dir_ / base}.gz is a file")


def scale(raw, max_value):
    """Bytes as f32 in [0, 1]: ssvae's lookup table of i as f32 / max as f32. Python divides in
    f64 and rounds once more to f32, which for a quotient gives the correctly rounded f32 (53 ≥
    2·24 + 2 bits), so the values are ssvae's to the bit."""
    lut = torch.tensor([i / max_value for i in range(256)], dtype=torch.float32)
    return lut[torch.frombuffer(bytearray(raw), dtype=torch.uint8).long()]


def load_test_set(dataset, data_dir):
    """(x [n, D] in [0, 1], labels [n]) of `dataset`'s test split, as ssvae reads it."""
    d = data_dir / dataset
    if dataset in ("mnist", "fashion-mnist"):
        img = read_maybe_gz(d, "t10k-images-idx3-ubyte")
        lab = read_maybe_gz(d, "t10k-labels-idx1-ubyte")
        n, h, w = struct.unpack(">III", img[4:16])
        x = scale(img[16 : 16 + n * h * w], 255).reshape(n, h * w)
        y = torch.tensor(list(lab[8 : 8 + n]), dtype=torch.int64)
        return x, y
    if dataset == "cifar10":
        nested = d / "cifar-10-batches-bin"
        raw = read_maybe_gz(nested if nested.is_dir() else d, "test_batch.bin")
        rec = 1 + 3 * 32 * 32
        n = len(raw) // rec
        y = torch.tensor([raw[i * rec] for i in range(n)], dtype=torch.int64)
        pixels = b"".join(raw[i * rec + 1 : (i + 1) * rec] for i in range(n))
        return scale(pixels, 255).reshape(n, rec - 1), y
    if dataset == "digits":
        # src/data/digits.rs: 64 pixels (0..16) then the label per row; the last 400 rows test.
        rows = [r for r in read_maybe_gz(d, "digits.csv").decode().split("\n") if r.strip()]
        vals = [[int(v) for v in r.split(",")] for r in rows[-400:]]
        x = scale(bytes(v for r in vals for v in r[:64]), 16).reshape(len(vals), 64)
        return x, torch.tensor([r[64] for r in vals], dtype=torch.int64)
    fail(f"unknown dataset {dataset!r}")


# --- the networks (src/models/arch.rs) -------------------------------------------------------------


class Mlp(nn.Module):
    """Hidden layers "0", "1", …, each followed by the activation."""

    def __init__(self, in_dim, hidden, layers, act):
        super().__init__()
        self.layers, self.act = layers, act
        self.width = hidden if layers else in_dim
        dims = [in_dim] + [hidden] * layers
        for i in range(layers):
            self.add_module(str(i), nn.Linear(dims[i], dims[i + 1]))

    def out_dim(self, in_dim):
        return self.width

    def forward(self, x):
        for i in range(self.layers):
            x = self.act(self._modules[str(i)](x))
        return x


class ConvEncoder(nn.Module):
    """Conv(c→32, k4 s2 p1) ReLU → Conv(32→64, k4 s2 p1) ReLU → flatten → Linear(→hidden) ReLU."""

    def __init__(self, input_chw, hidden):
        super().__init__()
        c, h, w = input_chw
        c1, c2 = CONV_CHANNELS
        self.input_chw = input_chw
        self.conv1 = nn.Conv2d(c, c1, 4, 2, 1)
        self.conv2 = nn.Conv2d(c1, c2, 4, 2, 1)
        self.fc = nn.Linear(c2 * (h // 4) * (w // 4), hidden)

    def forward(self, x):
        x = x.reshape(x.shape[0], *self.input_chw)
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return F.relu(self.fc(x.flatten(1)))


class ConvDecoder(nn.Module):
    """Linear(in→hidden) ReLU → Linear(→64·h/4·w/4) ReLU → ConvT(64→32) ReLU → ConvT(32→c)."""

    def __init__(self, in_dim, input_chw, hidden):
        super().__init__()
        c, h, w = input_chw
        c1, c2 = CONV_CHANNELS
        self.map = (c2, h // 4, w // 4)
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, c2 * (h // 4) * (w // 4))
        self.deconv1 = nn.ConvTranspose2d(c2, c1, 4, 2, 1)
        self.deconv2 = nn.ConvTranspose2d(c1, c, 4, 2, 1)

    def forward(self, z):
        m = F.relu(self.fc2(F.relu(self.fc1(z)))).reshape(z.shape[0], *self.map)
        return self.deconv2(F.relu(self.deconv1(m))).flatten(1)


class MlpDecoder(Mlp):
    """Hidden layers "0", "1", … (an Mlp) then "out", a Linear to the D Bernoulli logits."""

    def __init__(self, in_dim, out_dim, hidden, layers, act):
        super().__init__(in_dim, hidden, layers, act)
        self.out = nn.Linear(self.width, out_dim)

    def forward(self, z):
        return self.out(super().forward(z))


def encoder(arch, input_chw, hidden, layers):
    c, h, w = input_chw
    return Mlp(c * h * w, hidden, layers, F.relu) if arch == "mlp" else ConvEncoder(input_chw, hidden)


def decoder(arch, in_dim, input_chw, hidden, layers):
    c, h, w = input_chw
    if arch == "mlp":
        return MlpDecoder(in_dim, c * h * w, hidden, layers, F.relu)
    return ConvDecoder(in_dim, input_chw, hidden)


def trunk_width(arch, hidden):
    return hidden if arch == "mlp" else CONV_HIDDEN


# --- the models --------------------------------------------------------------------------------


class M2(nn.Module):
    """src/models/m2.rs. MLP: q(y|x) = cls_out(act(cls_h(x))); q(z|x,y)'s first layer is
    enc_x(x) + enc_y(y) (one Linear on [x, y], split). Conv: q(y|x) = cls_out(trunk(x)) and
    (μ, log σ²) = enc_x(trunk(x)) + enc_y(y), split in halves; p(x|y,z) the conv decoder."""

    def __init__(self, spec, act):
        super().__init__()
        c, h, w = spec["input"]
        d, k, z = c * h * w, spec["classes"], spec["z_dim"]
        self.arch, self.act = spec["arch"], act
        if self.arch == "mlp":
            hid = spec["hidden"]
            self.cls_h = nn.Linear(d, hid)
            self.cls_out = nn.Linear(hid, k)
            self.enc_x = nn.Linear(d, hid)
            self.enc_y = nn.Linear(k, hid, bias=False)
            self.enc_mu = nn.Linear(hid, z)
            self.enc_lv = nn.Linear(hid, z)
            self.dec_h = nn.Linear(z + k, hid)
            self.dec_out = nn.Linear(hid, d)
        else:
            self.trunk = ConvEncoder(spec["input"], CONV_HIDDEN)
            self.cls_out = nn.Linear(CONV_HIDDEN, k)
            self.enc_x = nn.Linear(CONV_HIDDEN, 2 * z)
            self.enc_y = nn.Linear(k, 2 * z, bias=False)
            self.dec = ConvDecoder(z + k, spec["input"], CONV_HIDDEN)

    def classify(self, x):
        h = self.act(self.cls_h(x)) if self.arch == "mlp" else self.trunk(x)
        return self.cls_out(h)


class Vae(nn.Module):
    """src/models/vae.rs: trunk enc, heads enc_mu and enc_lv, decoder dec."""

    def __init__(self, spec):
        super().__init__()
        c, h, w = spec["input"]
        arch, width, z = spec["arch"], trunk_width(spec["arch"], spec["hidden"]), spec["z_dim"]
        self.enc = encoder(arch, spec["input"], width, VAE_MLP_LAYERS)
        hd = self.enc.out_dim(c * h * w) if arch == "mlp" else width
        self.enc_mu = nn.Linear(hd, z)
        self.enc_lv = nn.Linear(hd, z)
        self.dec = decoder(arch, z, spec["input"], width, VAE_MLP_LAYERS)

    def encode(self, x):
        h = self.enc(x)
        return self.enc_mu(h), self.enc_lv(h)


class M1(nn.Module):
    """src/models/m1.rs: a VAE and a classifier (one ReLU layer of `hidden`) on its means."""

    def __init__(self, spec):
        super().__init__()
        self.vae = Vae(spec)
        self.cls_h = nn.Linear(spec["z_dim"], spec["hidden"])
        self.cls_out = nn.Linear(spec["hidden"], spec["classes"])

    def classify(self, x):
        mu, _ = self.vae.encode(x)
        return self.cls_out(F.relu(self.cls_h(mu)))


class Classifier(nn.Module):
    """src/models/classifier.rs: the --arch trunk (one hidden layer for mlp), then Linear(→K)."""

    def __init__(self, spec):
        super().__init__()
        c, h, w = spec["input"]
        width = trunk_width(spec["arch"], spec["hidden"])
        self.trunk = encoder(spec["arch"], spec["input"], width, 1)
        self.out = nn.Linear(self.trunk.out_dim(c * h * w) if spec["arch"] == "mlp" else width, spec["classes"])

    def classify(self, x):
        return self.out(self.trunk(x))


def build(spec, description):
    kind = spec["kind"]
    if kind not in SUPPORTED:
        fail(f"model {kind!r} is not supported by this script (supported: {', '.join(SUPPORTED)})")
    if kind == "m2":
        name = description["activation"]
        if name not in ACTIVATIONS:
            fail(f"activation {name!r} is not known to this script")
        return M2(spec, ACTIVATIONS[name])
    return {"m1": M1, "vae": Vae, "classifier": Classifier}[kind](spec)


# --- main ----------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="a run directory (its latest checkpoint) or a checkpoint directory")
    ap.add_argument("--data-dir", type=Path, default=None, help="as ssvae's --data-dir")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    ckpt = resolve(args.dir)
    config = json.loads((ckpt / "config.json").read_text())
    spec = config["model"]
    if config["format"] > 2:
        fail(f"{ckpt}: checkpoint format {config['format']} is newer than this script's 2")
    # Format 1 has no description; its activation was the one M2 has always had.
    description = config.get("description", {"activation": "relu"})
    model = build(spec, description)

    tensors, _ = read_safetensors(ckpt / "model.safetensors")
    want = model.state_dict()
    for name, t in tensors.items():
        if name in want and t.dim() == 4 and want[name].dim() == 1:
            tensors[name] = t.reshape(-1)  # a format-1 conv bias [1, C, 1, 1]
    model.load_state_dict(tensors, strict=True)
    model.eval()

    out = {"checkpoint": str(ckpt), "model": spec["kind"], "arch": spec["arch"], "tensors": len(tensors)}
    if hasattr(model, "classify"):
        x, y = load_test_set(config["dataset"], args.data_dir or default_data_dir())
        with torch.no_grad():
            pred = torch.cat([model.classify(b).argmax(1) for b in x.split(500)])
        wrong = int((pred != y).sum())
        out.update(test_images=len(y), misclassified=wrong, test_error=wrong / len(y))
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{ckpt}: {spec['kind']} ({spec['arch']}), {len(tensors)} tensors loaded strictly")
        if "test_error" in out:
            print(f"test error       {100 * out['test_error']:.2f}% ({wrong} of {len(y)} misclassified)")


if __name__ == "__main__":
    main()
