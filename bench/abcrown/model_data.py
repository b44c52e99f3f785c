"""alpha-beta-CROWN's `Customized` hooks for the side-by-side of complete verification
(docs/bounds.md): the MixTrain authors' `mnist_small` from the reference safetensors, and the
first MNIST test images in the unit box. `MIXTRAIN_SHARED` names the shared folder (default
`../shared` from the repository root, as an absolute path)."""
import gzip
import json
import os
import struct
import numpy as np
import torch
import torch.nn as nn

SHARED = os.environ.get("MIXTRAIN_SHARED", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../shared"))


def _tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float32).reshape(v["shape"]).copy())
    return out


def mnist_small():
    net = nn.Sequential(nn.Conv2d(1, 16, 4, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 4, 2, 1), nn.ReLU(),
                        nn.Flatten(), nn.Linear(1568, 100), nn.ReLU(), nn.Linear(100, 10))
    w = _tensors(f"{SHARED}/reference/mnist_small_mixtrain_eps0.3.safetensors")
    layers = [m for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
    names = sorted({k.rsplit(".", 1)[0] for k in w})
    assert len(names) == 4, names
    # each layer takes the parameters whose shapes fit it
    for layer in layers:
        for name in names:
            if w[name + ".weight"].shape == layer.weight.shape:
                layer.weight.data = w[name + ".weight"]
                layer.bias.data = w[name + ".bias"]
                names.remove(name)
                break
        else:
            raise ValueError("no weight fits", layer)
    return net


def mnist_test(spec, n=100):
    eps = float(spec["epsilon"])
    with gzip.open(f"{SHARED}/datasets/mnist/t10k-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[: int(n)]
    with gzip.open(f"{SHARED}/datasets/mnist/t10k-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[: int(n)]
    X = torch.tensor(x, dtype=torch.float32) / 255.0
    labels = torch.tensor(y, dtype=torch.long)
    data_max = torch.ones(1, 1, 1, 1)
    data_min = torch.zeros(1, 1, 1, 1)
    return X, labels, data_max, data_min, torch.tensor(eps).reshape(1, 1, 1, 1)
