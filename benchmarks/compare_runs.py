"""Check that two runs give the same figures for every comparison row (timings ignored).

    python benchmarks/compare_runs.py runs/before/metrics.json runs/after/metrics.json

Exit 0 and "identical" when every row matches; otherwise each difference and exit 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scenefusion.evaluation.compare import diff_runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--tolerance", type=float, default=1e-9)
    args = parser.parse_args()
    problems = diff_runs(args.before, args.after, args.tolerance)
    for line in problems:
        print(line)
    print("identical" if not problems else f"{len(problems)} difference(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
