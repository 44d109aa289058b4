"""``python -m paper_figures [--quick] [--only NAME ...] [--force]``: rebuild the paper figures."""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

# Figure name -> module (one script per figure, in the order of the paper).
FIGURES = {
    "classic": "paper_figures.classic",            # 1. classic stochastic bandits
    "exponents": "paper_figures.exponents",        # 2. regret exponents against theory
    "delayed_dueling": "paper_figures.delayed_dueling",  # 3. delayed dueling (LDB-DF)
    "routing": "paper_figures.routing",            # 4. routing Pareto front
    "sweep": "paper_figures.sweep",                # 5. LinUCB alpha x lambda heatmap
    "throughput": "paper_figures.throughput",      # 6. agent-steps/s, JAX against NumPy
    "nonstationary": "paper_figures.nonstationary",  # 7. dynamic regret, change points
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paper_figures",
                                     description="Rebuild the paper figures from their configs.")
    parser.add_argument("--quick", action="store_true", help="small horizons (the test suite)")
    parser.add_argument("--only", action="append", choices=sorted(FIGURES), metavar="NAME",
                        help="only this figure (repeatable): " + ", ".join(FIGURES))
    parser.add_argument("--force", action="store_true", help="run again even if cached")
    parser.add_argument("--out", help="output folder (default paper_figures/out)")
    parser.add_argument("--cache", help="results cache (default paper_figures/cache)")
    args = parser.parse_args(argv)
    names = args.only or list(FIGURES)
    total = time.perf_counter()
    for name in names:
        start = time.perf_counter()
        module = importlib.import_module(FIGURES[name])
        paths = module.make(quick=args.quick, out=Path(args.out) if args.out else None,
                            cache=Path(args.cache) if args.cache else None, force=args.force)
        print(f"{name}: {time.perf_counter() - start:.1f} s -> "
              + ", ".join(str(p) for p in paths), flush=True)
    print(f"all figures: {time.perf_counter() - total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
