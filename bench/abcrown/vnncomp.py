"""alpha-beta-CROWN on a VNN-COMP benchmark's instances, with its own VNN-COMP 2022 configuration,
written as the competition's results CSV so that `mixtrain vnncomp compare` reads it as it reads
the entrants' files.

usage (with the peers' interpreter, which runs alpha-beta-CROWN too):
    python vnncomp.py --abcrown DIR/complete_verifier --benchmark BENCH --out RESULTS.csv
                      [--timeout 120] [--log LOG] [--name mnist_fc]

BENCH holds `instances.csv`, `onnx/` and `vnnlib/` (gzipped or not). The instances are unpacked
into a scratch directory; the rows of the 256x2 network take alpha-beta-CROWN's
`exp_configs/vnncomp22/mnistfc_small.yaml`, the others its `mnistfc.yaml`, as in the
competition, with three changes this machine needs: `device: cpu`, `complete_verifier: bab`
(the configs name Gurobi's MIP, whose PyPI build is size-limited) and every instance's timeout
capped at `--timeout` (`bab: override_timeout`).
"""

import argparse
import csv
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

# alpha-beta-CROWN's words for an instance's end, in the competition's.
RESULTS = {"safe": "unsat", "safe-incomplete": "unsat", "unsafe-pgd": "sat",
           "unsafe-bab": "sat", "unsafe": "sat"}


def unpack(src, dst):
    """Copies `src` (or `src.gz`, decompressed) to `dst`."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.exists(src):
        shutil.copyfile(src, dst)
    else:
        with gzip.open(src + ".gz", "rb") as f, open(dst, "wb") as out:
            shutil.copyfileobj(f, out)


def config(abcrown, name, root, start, end, timeout, results):
    with open(os.path.join(abcrown, "exp_configs", "vnncomp22", name)) as f:
        cfg = yaml.safe_load(f)
    cfg.setdefault("general", {}).update(
        root_path=root, csv_name="instances.csv", device="cpu", complete_verifier="bab",
        results_file=results)
    cfg.setdefault("data", {}).update(start=start, end=end)
    cfg.setdefault("bab", {})["override_timeout"] = timeout
    return cfg


def results_of(log):
    """(status, seconds) per instance, in the order alpha-beta-CROWN ran them."""
    return [(s, float(t)) for s, t in
            re.findall(r"^Result: (\S+)(?: \(timed out\))? in ([0-9.]+) seconds", log, re.M)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--abcrown", required=True, help="alpha-beta-CROWN's complete_verifier")
    p.add_argument("--benchmark", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--log", default=None)
    p.add_argument("--name", default="mnist_fc")
    a = p.parse_args()
    abcrown = os.path.abspath(a.abcrown)
    with open(os.path.join(a.benchmark, "instances.csv")) as f:
        rows = [r for r in csv.reader(f) if r]
    scratch = tempfile.mkdtemp(prefix="abcrown-vnncomp-")
    for onnx, vnnlib, _ in rows:
        for path in (onnx, vnnlib):
            if not os.path.exists(os.path.join(scratch, path)):
                unpack(os.path.join(a.benchmark, path), os.path.join(scratch, path))
    shutil.copyfile(os.path.join(a.benchmark, "instances.csv"),
                    os.path.join(scratch, "instances.csv"))
    small = [i for i, r in enumerate(rows) if "256x2" in r[0]]
    groups = []
    if small:
        groups.append(("mnistfc_small.yaml", small[0], small[-1] + 1))
    rest = [i for i in range(len(rows)) if i not in small]
    if rest:
        groups.append(("mnistfc.yaml", rest[0], rest[-1] + 1))
    if any(e - s != len(ids) for (_, s, e), ids in zip(groups, [g for g in (small, rest) if g])):
        sys.exit("instances.csv must list the 256x2 rows in one run, the others in another")
    log = ""
    for name, start, end in groups:
        path = os.path.join(scratch, f"{name}")
        with open(path, "w") as f:
            yaml.safe_dump(config(abcrown, name, scratch, start, end, a.timeout,
                                  os.path.join(scratch, f"out-{start}.txt")), f)
        run = subprocess.run([sys.executable, "abcrown.py", "--config", path], cwd=abcrown,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        log += run.stdout
        if run.returncode != 0:
            if a.log:
                open(a.log, "w").write(log)
            sys.exit(f"alpha-beta-CROWN failed on {name} (exit {run.returncode})")
    if a.log:
        open(a.log, "w").write(log)
    results = results_of(log)
    if len(results) != len(rows):
        sys.exit(f"{len(results)} results in the log for {len(rows)} instances")
    with open(a.out, "w", newline="") as f:
        w = csv.writer(f)
        for (onnx, vnnlib, _), (status, seconds) in zip(rows, results):
            timed_out = seconds >= a.timeout
            result = "timeout" if timed_out else RESULTS.get(status, "timeout")
            w.writerow([a.name, f"./benchmarks/{a.name}/{onnx}", f"./benchmarks/{a.name}/{vnnlib}",
                        "0", result, f"{seconds:.6f}"])
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
