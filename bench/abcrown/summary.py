"""Counts, total time, median and 90th percentile per decided instance from an
alpha-beta-CROWN log, and /usr/bin/time -v's wall clock and peak memory if present.

usage: summary.py LOG
"""
import re, sys, statistics as st
text = open(sys.argv[1]).read()
res = re.findall(r"^Result: (\S+) in ([0-9.]+) seconds", text, re.M)
counts = {}
for r, _ in res:
    counts[r] = counts.get(r, 0) + 1
dec = [float(t) for r, t in res if r in ("safe", "safe-incomplete", "unsafe-pgd", "unsafe-bab", "unsafe")]
q = st.quantiles(dec, n=10)
print(len(res), counts, "sum %.1f s" % sum(float(t) for _, t in res), "median %.3f p90 %.3f" % (st.median(dec), q[8]))
print(re.findall(r"Elapsed.*|Maximum resident.*", text))
