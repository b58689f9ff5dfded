"""Turns Locust's CSV output into target/loadtest/summary.{md,json}:
requests/s, p50/p95/p99 and errors per endpoint and overall.

    python loadtest/summarize.py OUT_DIR --users N --duration 30s --host URL
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys


def number(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--users", required=True)
    parser.add_argument("--duration", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--target", default="")
    parser.add_argument("--max-error-rate", type=float, default=0.01)
    args = parser.parse_args()

    with open(os.path.join(args.out, "run_stats.csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    failures = []
    path = os.path.join(args.out, "run_failures.csv")
    if os.path.exists(path):
        with open(path, newline="", encoding="utf-8") as f:
            failures = list(csv.DictReader(f))

    endpoints = []
    total = None
    for row in rows:
        entry = {
            "name": row["Name"] if row["Type"] else "Aggregated",
            "method": row["Type"],
            "requests": int(number(row["Request Count"])),
            "failures": int(number(row["Failure Count"])),
            "req_per_s": round(number(row["Requests/s"]), 2),
            "p50_ms": number(row["50%"]),
            "p95_ms": number(row["95%"]),
            "p99_ms": number(row["99%"]),
            "max_ms": round(number(row["Max Response Time"]), 1),
        }
        entry["error_rate"] = round(entry["failures"] / entry["requests"], 4) if entry["requests"] else 0.0
        if row["Name"] == "Aggregated":
            entry["name"] = "all"
            total = entry
        else:
            endpoints.append(entry)
    if total is None:
        print("loadtest: no Aggregated row in run_stats.csv", file=sys.stderr)
        return 1

    summary = {
        "target": args.target or args.host,
        "users": int(args.users),
        "duration": args.duration,
        "total": total,
        "endpoints": endpoints,
        "failures": [
            {"method": f["Method"], "name": f["Name"], "error": f["Error"], "occurrences": int(number(f["Occurrences"]))}
            for f in failures
        ],
    }
    with open(os.path.join(args.out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)

    lines = [
        f"# Load test: {summary['target']}",
        "",
        f"{summary['users']} users for {summary['duration']}.",
        "",
        "| endpoint | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in endpoints + [total]:
        lines.append(
            f"| {e['method']} {e['name']} | {e['requests']} | {e['req_per_s']} | {e['p50_ms']:.0f} | "
            f"{e['p95_ms']:.0f} | {e['p99_ms']:.0f} | {e['max_ms']:.0f} | {e['failures']} ({e['error_rate']:.1%}) |"
        )
    if summary["failures"]:
        lines += ["", "Failures:", ""]
        lines += [f"- {f['method']} {f['name']}: {f['error']} ×{f['occurrences']}" for f in summary["failures"]]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "summary.md"), "w", encoding="utf-8") as f:
        f.write(text)
    print(text)
    if total["error_rate"] > args.max_error_rate:
        print(f"loadtest: error rate {total['error_rate']:.2%} above {args.max_error_rate:.0%}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
