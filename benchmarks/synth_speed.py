"""Time synthetic field generation at the paper's size (1750×1750); prints the median.

Run: ``python benchmarks/synth_speed.py [--repeats 3]`` (pin to one core with
``taskset -c 0`` to reproduce the single-core figure in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import statistics
import time

from cellcutter_nb.data.synth import make_field


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=1750)
    args = parser.parse_args()
    times = []
    for seed in range(args.repeats):
        t0 = time.perf_counter()
        field = make_field(seed=seed, shape=args.size)
        times.append(time.perf_counter() - t0)
        print(f"seed {seed}: {times[-1]:.2f} s, {field.n_cells} cells")
    print(f"make_field {args.size}x{args.size}: median {statistics.median(times):.2f} s "
          f"over {args.repeats} runs")


if __name__ == "__main__":
    main()
