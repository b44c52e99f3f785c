"""Reads an ONNX file written by mixtrain-interop with the reference implementations (onnx's
checker, onnxruntime) and compares its outputs with mixtrain's.

usage: onnx_check.py MODEL.onnx INPUT.f32 N,C,H,W EXPECTED.f32
Exit status: 0 agree, 1 disagree or invalid, 3 onnx/onnxruntime/numpy not installed.
Tolerance: |ort - ours| <= 1e-4 + 1e-3 |ours| (float32, different summation order).
"""
import sys

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
except ImportError as e:
    print(f"missing Python package: {e.name}")
    sys.exit(3)

model_path, input_path, shape, expected_path = sys.argv[1:5]
model = onnx.load(model_path)
onnx.checker.check_model(model, full_check=True)
opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
x = np.fromfile(input_path, dtype="<f4").reshape([int(d) for d in shape.split(",")])
session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
(got,) = session.run(["logits"], {"input": x})
want = np.fromfile(expected_path, dtype="<f4").reshape(got.shape)
err = np.abs(got - want)
worst = float(err.max())
ok = bool(np.all(err <= 1e-4 + 1e-3 * np.abs(want)))
print(f"{model.graph.name}: opset {opset}, {len(model.graph.node)} nodes, onnxruntime {ort.__version__}, max |diff| {worst:.3g}")
sys.exit(0 if ok else 1)
