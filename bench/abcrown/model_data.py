"""alpha-beta-CROWN's `Customized` hooks for the side-by-side of complete verification
(docs/bounds.md): the MixTrain authors' `mnist_small` from the reference safetensors, and the
first MNIST test images in the unit box, built and read by `bench/peers.py` as for the speed
side by side. `MIXTRAIN_SHARED` names the shared folder (default `../shared` from the
repository root, as an absolute path)."""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from peers import build, load_weights, tensors  # noqa: E402

SHARED = os.environ.get("MIXTRAIN_SHARED", os.path.join(HERE, "../../../shared"))


def mnist_small():
    net = build("mnist_small")
    load_weights(net, f"{SHARED}/reference/mnist_small_mixtrain_eps0.3.safetensors")
    return net


def mnist_test(spec, n=100):
    eps = float(spec["epsilon"])
    X, labels = tensors("mnist", f"{SHARED}/datasets", "test", int(n))
    data_max = torch.ones(1, 1, 1, 1)
    data_min = torch.zeros(1, 1, 1, 1)
    return X, labels, data_max, data_min, torch.tensor(eps).reshape(1, 1, 1, 1)
