"""How fast `ci-ml --help` answers, against a bare Python start in the same run.

Heavy libraries (scikit-learn, Great Expectations, DVC) must be imported only by
the commands that need them; this prints the time of `ci-ml --help` and its ratio
to `python -c pass`. Goal: under 0.5 s on the reference machine (2 cores).

    python benchmarks/bench_cli_help.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def timed(args: list[str], repeat: int) -> float:
    """Median wall time of running ``args`` ``repeat`` times."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    repeat = parser.parse_args().repeat
    baseline = timed([sys.executable, "-c", "pass"], repeat)
    help_time = timed([sys.executable, "-m", "ci_ml", "--help"], repeat)
    heavy = timed([sys.executable, "-c", "import sklearn.ensemble, dvc.repo"], max(3, repeat // 2))
    print(f"python -c pass                  {baseline * 1000:7.0f} ms  (baseline)")
    print(
        f"ci-ml --help                    {help_time * 1000:7.0f} ms  "
        f"({help_time / baseline:.1f}x baseline)"
    )
    print(
        f"import sklearn + dvc (avoided)  {heavy * 1000:7.0f} ms  "
        f"({heavy / baseline:.1f}x baseline)"
    )
    print(f"goal: ci-ml --help under 500 ms -> {'met' if help_time < 0.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
