#!/usr/bin/env python3
"""PyTorch's side of the per-operation profile (`crates/nn/examples/op_profile.rs`): each
convolution and linear layer of `mnist_small` and `cifar_small` at a batch of 50, its forward
pass, input gradient and weight gradient, timed one at a time (median of 30 after 3 warm-up
calls, in milliseconds), printed as one JSON object keyed `model/layer/pass`.

    ops.py [--threads T] > torch.json

The gradients are the `aten.convolution_backward` calls that autograd makes, one output at a
time (`torch.nn.grad.conv2d_input` / `conv2d_weight`), and the two matrix products of a linear
layer's backward pass.
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F

REPS = 30
BATCH = 50
# (channels, side, flattened features) of each model's input: crates/nn/src/zoo.rs
MODELS = {"mnist_small": (1, 28, 1568), "cifar_small": (3, 32, 2048)}


def median_ms(f):
    for _ in range(3):
        f()
    times = []
    for _ in range(REPS):
        start = time.perf_counter()
        f()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return times[REPS // 2]


def conv(cin, cout, k, s, p, side):
    x = torch.rand(BATCH, cin, side, side) * 2 - 1
    w = torch.rand(cout, cin, k, k) * 2 - 1
    b = torch.rand(cout) * 2 - 1
    o = (side + 2 * p - k) // s + 1
    g = torch.rand(BATCH, cout, o, o) * 2 - 1
    return {
        "forward": median_ms(lambda: F.conv2d(x, w, b, s, p)),
        "input grad": median_ms(lambda: torch.nn.grad.conv2d_input(x.shape, w, g, s, p)),
        "weight grad": median_ms(lambda: torch.nn.grad.conv2d_weight(x, w.shape, g, s, p)),
    }


def linear(i, o):
    x = torch.rand(BATCH, i) * 2 - 1
    w = torch.rand(i, o) * 2 - 1
    b = torch.rand(o) * 2 - 1
    g = torch.rand(BATCH, o) * 2 - 1
    return {
        "forward": median_ms(lambda: x @ w + b),
        "input grad": median_ms(lambda: g @ w.T),
        "weight grad": median_ms(lambda: x.T @ g),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = {}
    with torch.no_grad():
        for model, (c, side, flat) in MODELS.items():
            layers = {
                "conv1": conv(c, 16, 4, 2, 1, side),
                "conv2": conv(16, 32, 4, 2, 1, side // 2),
                "fc1": linear(flat, 100),
                "fc2": linear(100, 10),
            }
            for layer, passes in layers.items():
                for name, ms in passes.items():
                    out[f"{model}/{layer}/{name}"] = ms
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
