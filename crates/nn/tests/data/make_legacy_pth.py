"""Writes tiny_legacy.pth: a state dict in PyTorch's legacy torch.save format (before 1.6),
byte for byte as torch writes it, without torch: the format of the MixTrain authors' weights.

The network is `tiny` of crates/nn/tests/pytorch.rs: conv "0" [2, 1, 2, 2] and linear "3"
[3, 8] under nn.Sequential indices. Value i of a tensor is (i + offset) / 8 - 1, offsets
0, 10, 20, 30 in order. Run: python3 make_legacy_pth.py (no dependencies).
"""
import collections
import pickle
import struct
import sys
import types

MAGIC, PROTOCOL = 0x1950A86A20F9469CFC6C, 1001

# the globals torch's pickles name, as stand-ins so that pickle writes their names
torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")


def _rebuild_tensor_v2(*args):
    raise NotImplementedError


_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2
FloatStorage = type("FloatStorage", (), {"__module__": "torch"})
torch.FloatStorage, torch._utils = FloatStorage, utils
sys.modules["torch"], sys.modules["torch._utils"] = torch, utils


class Storage:
    def __init__(self, key, values):
        self.key, self.values = key, values


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride = tuple(
            int(__import__("math").prod(self.shape[i + 1 :])) for i in range(len(self.shape))
        )
        hooks = collections.OrderedDict()
        return (_rebuild_tensor_v2, (self.storage, 0, self.shape, stride, False, hooks))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", len(obj.values), None)
        return None


def main():
    shapes = [("0.weight", (2, 1, 2, 2)), ("0.bias", (2,)), ("3.weight", (3, 8)), ("3.bias", (3,))]
    state, storages = collections.OrderedDict(), []
    for i, (name, shape) in enumerate(shapes):
        n = int(__import__("math").prod(shape))
        storage = Storage(str(94000000 + i), [(j + 10 * i) / 8 - 1 for j in range(n)])
        storages.append(storage)
        state[name] = Tensor(storage, shape)
    state._metadata = collections.OrderedDict([("", {"version": 1})])
    with open("tiny_legacy.pth", "wb") as f:
        for header in (MAGIC, PROTOCOL, {"protocol_version": PROTOCOL, "little_endian": True,
                                         "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(header, f, protocol=2)
        Pickler(f, protocol=2).dump(state)
        keys = sorted(s.key for s in storages)
        pickle.dump(keys, f, protocol=2)
        for key in keys:
            values = next(s.values for s in storages if s.key == key)
            f.write(struct.pack("<q", len(values)))
            f.write(struct.pack(f"<{len(values)}f", *values))


if __name__ == "__main__":
    main()
