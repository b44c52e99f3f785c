"""Decides L_inf robustness properties with Marabou, independently of mixtrain.

usage: marabou_check.py MODEL.onnx PROPERTY.vnnlib [PROPERTY.vnnlib ...]
Each property is the VNN-LIB that mixtrain-interop writes: a box on the inputs X_i and a
disjunction of `Y_j >= Y_label`. Each disjunct is one Marabou query; the first `sat` one
gives the counterexample. One line per property: `sat x_0 x_1 ...`, or `unsat` / `unknown`
(every disjunct unsat, or some query neither).
Exit status: 0 done, 3 maraboupy not installed.
"""
import re
import sys

try:
    from maraboupy import Marabou
except ImportError as e:
    print(f"missing Python package: {e.name}")
    sys.exit(3)

model_path, properties = sys.argv[1], sys.argv[2:]
options = Marabou.createOptions(verbosity=0, timeoutInSeconds=60)

for path in properties:
    text = open(path).read()
    lower, upper = {}, {}
    for op, i, v in re.findall(r"\(assert \((<=|>=) X_(\d+) (\S+)\)\)", text):
        (upper if op == "<=" else lower)[int(i)] = float(v)
    disjuncts = [(int(j), int(y)) for j, y in re.findall(r"\(>= Y_(\d+) Y_(\d+)\)", text)]
    verdict = "unsat"
    for target, label in disjuncts:
        net = Marabou.read_onnx(model_path)
        xs = net.inputVars[0].flatten()
        ys = net.outputVars[0].flatten()
        for i, v in enumerate(xs):
            net.setLowerBound(v, lower[i])
            net.setUpperBound(v, upper[i])
        # Y_label - Y_target <= 0
        net.addInequality([ys[label], ys[target]], [1.0, -1.0], 0.0)
        code, values, _ = net.solve(options=options, verbose=False)
        if code == "sat":
            verdict = "sat " + " ".join(repr(float(values[v])) for v in xs)
            break
        if code != "unsat":
            verdict = "unknown"
    print(verdict, flush=True)
