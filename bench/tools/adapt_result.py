#!/usr/bin/env python3
"""Turn an `mbrl adapt` run directory into a committed result (BENCHMARKS.md's learning-result shape).

usage: adapt_result.py RUN_DIR NAME COMMAND [NOTE]
  RUN_DIR  the adapt config's `out` (holds adapt-summary.json, adapt.jsonl, adapt.svg)
  NAME     result name, e.g. adapt-Pendulum-v1 -> bench/results/NAME.{json,jsonl,svg}
  COMMAND  the command that produced the run, recorded verbatim
  NOTE     optional free text (what was reused, bounds, caveats)
Files are written to a temporary name and renamed, so a result is never half written.
"""
import json
import os
import shutil
import sys


def write_atomic(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv):
    if len(argv) not in (4, 5):
        sys.exit(__doc__)
    run_dir, name, command = argv[1], argv[2], argv[3]
    note = argv[4] if len(argv) == 5 else ""
    summary_path = os.path.join(run_dir, "adapt-summary.json")
    if not os.path.exists(summary_path):
        sys.exit(f"adapt_result: {summary_path} not found (the adapt run has not finished)")
    with open(summary_path) as f:
        summary = json.load(f)
    if summary.get("kind") != "adapt-summary":
        sys.exit(f"adapt_result: {summary_path}: expected kind 'adapt-summary', got {summary.get('kind')!r}")
    result = {"benchmark": "adapt", "algo": "adapt", "env": summary["env"], "variant": "", "command": command}
    result.update({k: v for k, v in summary.items() if k not in ("kind", "env", "strategies")})
    if note:
        result["note"] = note
    result["strategies"] = summary["strategies"]
    out = os.path.join("bench", "results", name)
    write_atomic(out + ".json", json.dumps(result, indent=1) + "\n")
    for ext in ("jsonl", "svg"):
        shutil.copyfile(os.path.join(run_dir, f"adapt.{ext}"), f"{out}.{ext}.tmp")
        os.replace(f"{out}.{ext}.tmp", f"{out}.{ext}")
    for s in summary["strategies"]:
        print(f"{s['strategy']:8s} eval {s['evalReturn']:10.1f} ± {s['evalReturnStd']:7.1f}  recovery {s['evalRecovery']:.2f}"
              f"  (nominal {s['nominalEvalReturn']:.1f})")


if __name__ == "__main__":
    main(sys.argv)
