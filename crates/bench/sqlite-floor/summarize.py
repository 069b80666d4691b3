#!/usr/bin/env python3
"""Prints every run, then per variant the median and [min..max] of each metric."""
import sys, statistics
from collections import defaultdict

# Usage: summarize.py LOG... [--max-others PCT]  (runs where the rest of the machine used more
# than PCT % of a core are listed but left out of the medians)
args = sys.argv[1:]
max_others = float("inf")
if "--max-others" in args:
    i = args.index("--max-others")
    max_others = float(args[i + 1])
    del args[i:i + 2]
rows = []
for path in args:
    tag = path.rsplit("/", 1)[-1].removesuffix(".log")
    for line in open(path):
        if line.startswith("RESULT "):
            r = dict(kv.split("=", 1) for kv in line.split()[1:])
            r["round"] = f"{tag}/{r['round']}"
            rows.append(r)

cols = [("jobs_s", "jobs/s", 0), ("p50_us", "p50 ms", -3), ("p99_us", "p99 ms", -3), ("batch", "batch", 1),
        ("commit_ms", "commit ms", 2), ("cpu_us_job", "CPU µs/job", 1), ("cs_job", "cs/job", 2),
        ("vcs_job", "vol", 2), ("ivcs_job", "invol", 2), ("tokio_cpu_us_job", "tokio µs", 1),
        ("tokio_cs_job", "tokio cs", 2), ("sqlite_cpu_us_job", "sqlite-thr µs", 1), ("sqlite_cs_job", "sqlite-thr cs", 2),
        ("others_pct", "others %", 0)]

def fmt(v, d):
    if d < 0:
        return f"{v / 1000:.1f}"
    return f"{v:.{d}f}"

print("| run | variant | " + " | ".join(c[1] for c in cols) + " |")
print("|" + "---|" * (len(cols) + 2))
for r in rows:
    print(f"| {r['round']} | {r['variant']} | " + " | ".join(fmt(float(r[k]), d) for k, _, d in cols) + " |")

print()
print(f"median [min..max] per variant (runs with others % <= {max_others})")
print("| variant | n | " + " | ".join(c[1] for c in cols) + " |")
print("|" + "---|" * (len(cols) + 2))
by = defaultdict(list)
for r in rows:
    if float(r["others_pct"]) <= max_others:
        by[r["variant"]].append(r)
for v, rs in by.items():
    cells = []
    for k, _, d in cols:
        xs = [float(r[k]) for r in rs]
        cells.append(f"{fmt(statistics.median(xs), d)} [{fmt(min(xs), d)}..{fmt(max(xs), d)}]")
    print(f"| {v} | {len(rs)} | " + " | ".join(cells) + " |")
