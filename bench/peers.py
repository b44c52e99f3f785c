#!/usr/bin/env python3
"""The peers' side of `cargo xtask bench --peers`: one step of one peer, timed on the shapes,
data, batch, eps and thread count that xtask times ours on, printed as one JSON object.

    peers.py versions [--symint DIR]
    peers.py describe --model M --dataset D --data DIR --images N
    peers.py time --row ROW --peer PEER --model M --dataset D --data DIR --images N
                  [--batch 50] [--eps E] [--k 5] [--threads T] [--weights F] [--symint DIR]

Peers: PyTorch for the steps it needs no library for (natural, PGD, plain IBP), auto_LiRPA
for IBP, CROWN-IBP and CROWN, and the MixTrain authors' `symbolic_interval` (a checkout named
by --symint, run unmodified) for MixTrain's symbolic step and symbolic bounds. Each step is
written here from the papers' definitions and ours, so that both sides do the same work: the
same loss terms and mix (natural 0.5, robust 0.5), Adam at 1e-3, the box [x - eps, x + eps]
clipped to [0, 1]. A peer that is not installed is reported as skipped with the reason, never
as a failure of the run.
"""

import argparse
import gzip
import json
import os
import struct
import sys
import time

# The data and models of ours (crates/data, crates/nn/src/zoo.rs).
CIFAR_MEAN = [0.485, 0.456, 0.406]
CIFAR_STD = [0.225, 0.225, 0.225]
SHAPES = {"mnist_small": (1, 28), "cifar_small": (3, 32)}


def skip(reason):
    print(json.dumps({"skipped": reason}))
    sys.exit(0)


def imports(peer, symint=None):
    """The modules `peer` needs, or the reason it cannot run here."""
    try:
        import torch  # noqa: F401
    except ImportError as e:
        return f"PyTorch is not importable ({e})"
    if peer == "auto_LiRPA":
        try:
            import auto_LiRPA  # noqa: F401
        except ImportError as e:
            return f"auto_LiRPA is not importable ({e})"
    if peer == "symbolic_interval":
        if not symint:
            return "no checkout of symbolic_interval given (--symint or SYMINT_PATH)"
        sys.path.insert(0, symint)
        try:
            import symbolic_interval.symbolic_network  # noqa: F401
        except ImportError as e:
            return f"symbolic_interval is not importable from {symint} ({e})"
    return None


def versions(symint):
    out = {"python": sys.version.split()[0], "torch": None, "auto_LiRPA": None,
           "symbolic_interval": None, "missing": {}}
    for peer in ["PyTorch", "auto_LiRPA", "symbolic_interval"]:
        reason = imports(peer, symint)
        if reason:
            out["missing"][peer] = reason
    if "PyTorch" not in out["missing"]:
        import torch
        out["torch"] = torch.__version__
    if "auto_LiRPA" not in out["missing"]:
        import auto_LiRPA
        out["auto_LiRPA"] = auto_LiRPA.__version__
    if "symbolic_interval" not in out["missing"]:
        out["symbolic_interval"] = checkout(symint)
    return out


def checkout(path):
    """A checkout's commit (`path at abc1234`), or its path when git cannot tell."""
    import subprocess
    try:
        commit = subprocess.run(["git", "-C", path, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return f"{path} at {commit}" if commit else path


# ---- data: the files ours reads, decoded the same way (pixels / 255) ----

def read_mnist(folder, split, n):
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz")) as f:
        magic, count, rows, cols = struct.unpack(">IIII", f.read(16))
        if magic != 2051:
            raise SystemExit(f"{f.name}: not an idx3 image file (magic {magic})")
        n = min(n, count)
        pixels = f.read(n * rows * cols)
    with gzip.open(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz")) as f:
        f.read(8)
        labels = f.read(n)
    return pixels, labels, n, (1, rows, cols)


def read_cifar(folder, split, n):
    name = "data_batch_1_first4000.bin.gz" if split == "train" else "test_batch_first1000.bin.gz"
    with gzip.open(os.path.join(folder, name)) as f:
        raw = f.read(n * 3073)
    n = len(raw) // 3073
    labels = bytes(raw[i * 3073] for i in range(n))
    pixels = b"".join(raw[i * 3073 + 1:(i + 1) * 3073] for i in range(n))
    return pixels, labels, n, (3, 32, 32)


def load(dataset, data, split, n):
    """The first `n` images of `split` as float32 [n, c, h, w] in [0, 1], and their labels."""
    import numpy as np
    folder = os.path.join(data, dataset)
    if dataset == "mnist":
        pixels, labels, n, shape = read_mnist(folder, split, n)
    elif dataset == "cifar10-sample":
        pixels, labels, n, shape = read_cifar(folder, split, n)
    else:
        raise SystemExit(f"--dataset {dataset}: expected mnist or cifar10-sample")
    x = np.frombuffer(pixels, dtype=np.uint8).reshape((n,) + shape).astype(np.float32) / 255.0
    y = np.frombuffer(labels, dtype=np.uint8).astype(np.int64)
    return x, y


def tensors(dataset, data, split, n):
    import torch
    x, y = load(dataset, data, split, n)
    return torch.from_numpy(x), torch.from_numpy(y)


# ---- models: ours' zoo (crates/nn/src/zoo.rs), built in PyTorch ----

def layers(model):
    """The layers as ours' `LayerSpec` serialises them, less the layer names (the test
    compares the two)."""
    channels, side = SHAPES[model]

    def conv(cin, cout):
        return {"kind": "conv2d", "in_channels": cin, "out_channels": cout, "kernel": 4,
                "stride": 2, "padding": 1}

    def linear(fin, fout):
        return {"kind": "linear", "in_features": fin, "out_features": fout}

    relu = {"kind": "relu"}
    first = ([{"kind": "normalize", "mean": CIFAR_MEAN, "std": CIFAR_STD}]
             if model == "cifar_small" else [])
    return first + [conv(channels, 16), relu, conv(16, 32), relu, {"kind": "flatten"},
                    linear(32 * (side // 4) ** 2, 100), relu, linear(100, 10)]


def build(model):
    import torch
    import torch.nn as nn

    class Normalize(nn.Module):
        def __init__(self, mean, std):
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

        def forward(self, x):
            return (x - self.mean) / self.std

    def module(spec):
        kind = spec["kind"]
        if kind == "conv2d":
            return nn.Conv2d(spec["in_channels"], spec["out_channels"], spec["kernel"],
                             spec["stride"], spec["padding"])
        if kind == "linear":
            return nn.Linear(spec["in_features"], spec["out_features"])
        if kind == "normalize":
            return Normalize(spec["mean"], spec["std"])
        return nn.ReLU() if kind == "relu" else nn.Flatten()

    return nn.Sequential(*[module(spec) for spec in layers(model)])


def load_weights(net, path):
    """Weights in PyTorch layout (`conv1.weight`, ...): a legacy `.pth` state dict, or
    safetensors read without the safetensors package (an 8-byte header length, a JSON header,
    the raw little-endian tensors)."""
    import numpy as np
    import torch
    if path.endswith(".pth"):
        tensors = torch.load(path, map_location="cpu")
    else:
        with open(path, "rb") as f:
            size = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(size))
            blob = f.read()
        tensors = {}
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            if meta["dtype"] != "F32":
                raise SystemExit(f"{path}: {name} is {meta['dtype']}, expected F32")
            start, end = meta["data_offsets"]
            tensors[name] = torch.from_numpy(
                np.frombuffer(blob[start:end], dtype="<f4").reshape(meta["shape"]).copy())
    # named as ours names them, or by nn.Sequential index as the authors' .pth files are
    weights = [k[:-len(".weight")] for k in tensors if k.endswith(".weight")]
    layers = [m for m in net if hasattr(m, "weight")]
    if len(weights) != len(layers):
        raise SystemExit(f"{path}: {len(weights)} weight tensors for {len(layers)} layers")
    for layer, name in zip(layers, weights):
        layer.weight.data = tensors[f"{name}.weight"].float()
        layer.bias.data = tensors[f"{name}.bias"].float()


# ---- the steps ----

def specs(y, classes=10):
    """C such that C z = z_y - z_j for every j != y: [n, classes - 1, classes]."""
    import torch
    eye = torch.eye(classes, device=y.device)
    c = eye[y].unsqueeze(1) - eye.unsqueeze(0)
    keep = torch.arange(classes).unsqueeze(0) != y.unsqueeze(1)
    return c[keep].view(y.shape[0], classes - 1, classes)


def robust_ce(lower):
    """Cross-entropy of the worst-case logits: -lower margins beside 0 for the true class."""
    import torch
    import torch.nn.functional as F
    zeros = torch.zeros(lower.shape[0], 1, device=lower.device)
    return F.cross_entropy(torch.cat([zeros, -lower], dim=1),
                           torch.zeros(lower.shape[0], dtype=torch.long, device=lower.device))


def box(x, eps):
    return (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)


def interval_margins(net, x, y, eps):
    """Plain IBP (Gowal et al.): the margins' lower bounds, C folded into the last layer."""
    import torch
    import torch.nn as nn
    lo, hi = box(x, eps)
    layers = list(net)
    for layer in layers[:-1]:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            mid, rad = (hi + lo) / 2, (hi - lo) / 2
            mid = layer(mid)
            rad = (nn.functional.conv2d(rad, layer.weight.abs(), None, layer.stride,
                                        layer.padding) if isinstance(layer, nn.Conv2d)
                   else rad @ layer.weight.abs().t())
            lo, hi = mid - rad, mid + rad
        else:
            lo, hi = layer(lo), layer(hi)
    last = layers[-1]
    c = specs(y)
    w = c @ last.weight
    b = c @ last.bias
    mid, rad = (hi + lo) / 2, (hi - lo) / 2
    return torch.einsum("nkd,nd->nk", w, mid) - torch.einsum("nkd,nd->nk", w.abs(), rad) + b


def pgd(net, x, y, eps, step, steps):
    """Madry et al.'s PGD on the cross-entropy from a uniform random start, in [0, 1]."""
    import torch
    import torch.nn.functional as F
    lo, hi = box(x, eps)
    adv = lo + (hi - lo) * torch.rand_like(x)
    for _ in range(steps):
        adv.requires_grad_(True)
        grad, = torch.autograd.grad(F.cross_entropy(net(adv), y), adv)
        adv = torch.min(torch.max(adv.detach() + step * grad.sign(), lo), hi)
    return adv.detach()


class Step:
    """One training method's step for one peer: `loss(x, y)` of a batch."""

    def __init__(self, row, peer, net, args, x0):
        import torch.nn as nn
        self.row, self.peer, self.net, self.args = row, peer, net, args
        self.ce = nn.CrossEntropyLoss()
        # cifar_small's normalisation goes into the inputs for the bound libraries: the
        # authors' layers know none, and auto_LiRPA 0.7.1's CROWN fails on it ("size of tensor a
        # (2048) must match ... b (8)" in concretize). The layers are net's, so that gradients
        # reach net's parameters; the bounds are the same.
        self.plain = nn.Sequential(*list(net)[1 if args.model == "cifar_small" else 0:])
        if peer == "auto_LiRPA":
            from auto_LiRPA import BoundedModule
            self.bounded = BoundedModule(self.plain, self.normalize(x0), device=args.device)
        if peer == "symbolic_interval":
            from symbolic_interval.symbolic_network import sym_interval_analyze
            self.sym = sym_interval_analyze

    def bounded_input(self, x):
        """x with its box, for auto_LiRPA."""
        from auto_LiRPA import BoundedTensor
        from auto_LiRPA.perturbations import PerturbationLpNorm
        lo, hi = box(x, self.args.eps)
        n = self.normalize
        return BoundedTensor(n(x), PerturbationLpNorm(norm=float("inf"), x_L=n(lo), x_U=n(hi)))

    def bounds(self, y, method, x=None):
        """auto_LiRPA's lower bounds of the margins on the boxes of `x`, or without `x` of the
        input the bounded module last ran forward on (its training examples' order: the
        natural logits first, then the bounds)."""
        c = specs(y)
        given = {} if x is None else {"x": (self.bounded_input(x),)}
        if method == "CROWN-IBP":
            ilb, _ = self.bounded.compute_bounds(**given, C=c, IBP=True, method=None)
            clb, _ = self.bounded.compute_bounds(C=c, IBP=False, method="backward",
                                                 bound_upper=False)
            beta = self.args.beta
            return beta * clb + (1 - beta) * ilb
        lb, _ = self.bounded.compute_bounds(**given, C=c, method=method, bound_upper=False)
        return lb

    def symbolic(self, x, y):
        """The authors' symbolic robust cross-entropy on (x, y)."""
        loss, _ = self.sym(self.plain, self.symbolic_eps(), self.normalize(x), y,
                           use_cuda=self.args.device == "cuda")
        return loss

    def normalize(self, x):
        """cifar_small's input normalisation (one std for every channel)."""
        import torch
        if self.args.model != "cifar_small":
            return x
        return (x - torch.tensor(CIFAR_MEAN, device=x.device).view(1, -1, 1, 1)) / CIFAR_STD[0]

    def symbolic_eps(self):
        """eps in the normalised inputs symbolic_interval sees (it clips the box to the
        batch's own min and max)."""
        return self.args.eps / (CIFAR_STD[0] if self.args.model == "cifar_small" else 1.0)

    def k_points(self, x, y):
        import torch
        pick = torch.randint(0, x.shape[0], (self.args.k,))
        return x[pick], y[pick]

    def loss(self, x, y):
        row, peer, a = self.row, self.peer, self.args
        if row == "pgd":
            return self.ce(self.net(pgd(self.net, x, y, a.eps, a.pgd_step, 10)), y)
        if peer == "auto_LiRPA":
            natural = self.ce(self.bounded(self.bounded_input(x)), y)
        else:
            natural = self.ce(self.net(x), y)
        if row == "natural":
            return natural
        if row == "ibp":
            lower = (interval_margins(self.net, x, y, a.eps) if peer == "PyTorch"
                     else self.bounds(y, "IBP"))
            robust = robust_ce(lower)
        elif row == "crown-ibp":
            robust = robust_ce(self.bounds(y, "CROWN-IBP"))
        elif row == "mixtrain":
            xk, yk = self.k_points(x, y)
            robust = (self.symbolic(xk, yk) if peer == "symbolic_interval"
                      else robust_ce(self.bounds(yk, "CROWN", xk)))
        else:
            raise SystemExit(f"--row {row}: no such training row")
        return 0.5 * natural + 0.5 * robust


# the peers each row can run on
TRAIN_ROWS = {
    "natural": ["PyTorch"],
    "pgd": ["PyTorch"],
    "ibp": ["PyTorch", "auto_LiRPA"],
    "crown-ibp": ["auto_LiRPA"],
    "mixtrain": ["symbolic_interval", "auto_LiRPA"],
}
# ours' domain name -> the peer and its method
VERIFY_ROWS = {
    "verify-interval": ("auto_LiRPA", "IBP"),
    "verify-crown": ("auto_LiRPA", "CROWN-IBP"),
    "verify-crown-symbolic": ("auto_LiRPA", "CROWN"),
    "verify-symbolic": ("symbolic_interval", "sym"),
}


def clock(args):
    """Seconds now, after the GPU's queued work when on one (its kernels run asynchronously)."""
    import torch
    if args.device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def train_time(args):
    import torch
    x, y = tensors(args.dataset, args.data, "train", args.images)
    x, y = x.to(args.device), y.to(args.device)
    net = build(args.model).to(args.device)
    step = Step(args.row, args.peer, net, args, x[:args.batch])
    # auto_LiRPA's bounded module holds net's own parameters (the same objects)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    batches = x.shape[0] // args.batch
    start = clock(args)
    for b in range(batches):
        xb, yb = x[b * args.batch:(b + 1) * args.batch], y[b * args.batch:(b + 1) * args.batch]
        loss = step.loss(xb, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = clock(args) - start
    return {"images": batches * args.batch, "seconds": seconds, "final_loss": loss.item()}


def verify_time(args):
    import torch
    peer, method = VERIFY_ROWS[args.row]
    x, y = tensors(args.dataset, args.data, "test", args.images)
    x, y = x.to(args.device), y.to(args.device)
    net = build(args.model)
    load_weights(net, args.weights)
    net = net.to(args.device)
    step = Step(args.row, peer, net, args, x[:args.batch])
    verified = 0
    start = clock(args)
    with torch.no_grad():
        for b in range(0, x.shape[0], args.batch):
            xb, yb = x[b:b + args.batch], y[b:b + args.batch]
            if peer == "symbolic_interval":
                from symbolic_interval.symbolic_network import Interval_Bound
                # the upper bounds of z_j - z_y; verified when every j != y is below 0
                wc = Interval_Bound(step.plain, step.symbolic_eps(), method="sym",
                                    use_cuda=args.device == "cuda")(step.normalize(xb), yb)
                wc = wc.scatter(1, yb.unsqueeze(1), float("-inf"))
                verified += int((wc.max(1)[0] < 0).sum())
            else:
                lower = step.bounds(yb, method, xb)
                verified += int((lower.min(1)[0] > 0).sum())
    seconds = clock(args) - start
    return {"images": x.shape[0], "seconds": seconds, "verified": verified}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["versions", "describe", "time"])
    parser.add_argument("--row")
    parser.add_argument("--peer")
    parser.add_argument("--model", choices=sorted(SHAPES))
    parser.add_argument("--dataset")
    parser.add_argument("--data")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--pgd-step", type=float, default=0.025,
                        help="PGD's step in training: ours' default is 2.5 eps / 10 steps")
    parser.add_argument("--beta", type=float, default=1.0,
                        help="CROWN-IBP's weight on the CROWN bound")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--weights")
    parser.add_argument("--symint", default=os.environ.get("SYMINT_PATH"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="where PyTorch runs (cuda: the GPU check, scripts/gpu-check.sh)")
    args = parser.parse_args()

    if args.command == "versions":
        print(json.dumps(versions(args.symint)))
        return
    if args.command == "describe":
        # numpy only, so that the shapes and data are checked wherever numpy is
        try:
            x, y = load(args.dataset, args.data, "train", args.images)
        except ImportError as e:
            skip(f"numpy is not importable ({e})")
        print(json.dumps({"layers": layers(args.model), "shape": list(x.shape[1:]),
                          "images": x.shape[0], "pixel_sum": float(x.astype("float64").sum()),
                          "labels": y.tolist()}))
        return
    peer = args.peer
    if args.row in VERIFY_ROWS:
        peer = VERIFY_ROWS[args.row][0]
    elif peer not in TRAIN_ROWS.get(args.row, []):
        raise SystemExit(f"--row {args.row} --peer {peer}: rows and their peers: {TRAIN_ROWS}, "
                         f"{ {k: v[0] for k, v in VERIFY_ROWS.items()} }")
    reason = imports(peer, args.symint)
    if reason:
        skip(reason)
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = verify_time(args) if args.row in VERIFY_ROWS else train_time(args)
    out.update({"row": args.row, "peer": peer, "threads": torch.get_num_threads(),
                "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu"})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
