"""Tutorial: write a learner, compare it with the built-in ones, sweep it, draw the sensitivity
plot, print the paper table and check a regret bound, all from Python (README, "Tutorial").

Run it from the repository root (the test suite runs it too, tests/test_tutorial.py; about half
a minute on a laptop CPU, most of it compiling):

    python docs/tutorial.py [OUT_FOLDER]

The learner is an optimistic greedy index policy: play the arm with the highest empirical mean
plus a bonus that fades as b / n (n the arm's pulls), a textbook heuristic (Sutton and Barto
2018, "Reinforcement Learning: An Introduction", sec. 2.6, optimistic initial values) with no
regret guarantee: with a small bonus it can lock onto a bad arm (linear regret), with a large
one it explores for long. The sensitivity plot shows both ends. The bound checked is UCB1's
finite-time bound (Auer, Cesa-Bianchi and Fischer 2002, Thm 1) on the same runs.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))          # the suite's packages, when run from a checkout

import jax.numpy as jnp  # noqa: E402

import banditjax  # noqa: E402
from bandits.core import untried_first  # noqa: E402
from bandits.mab import IndexPolicy  # noqa: E402
from bandits.theory import Theory  # noqa: E402


# 1. A learner: an index policy over per-arm counts and means (bandits/mab.py). Registered with
#    a decorator so that every tool (banditjax bounds included) finds it by name; a class passed
#    as banditjax.run(..., learners=[...]) would be registered for that call only.
@banditjax.register_learner("tutorial_greedy")
class TutorialGreedy(IndexPolicy):
    """Optimistic greedy: empirical mean plus bonus / n (Sutton and Barto 2018, sec. 2.6)."""

    settings = (banditjax.Setting("bonus", 1.0, "optimism added to an arm pulled n times: "
                                  "bonus / n", low=0.0),)
    theory = Theory(None)                  # no regret rate claimed
    colour = "#AA3377"                     # its colour in every figure
    index_per_arm = True                   # the index of an arm reads that arm only (faster)

    def index(self, key, stats, obs, hparams):
        optimism = hparams["bonus"] / jnp.maximum(stats.counts, 1.0)
        return untried_first(stats.means + optimism, stats.counts)


# 2. Compare it with built-in learners and sweep its bonus, in one run: a list is a sweep axis,
#    and the five bonuses are one compiled call (they are arrays on the run axis). Small sizes:
#    a tutorial, not a study.
CONFIG = {
    "run": {"horizon": 2000, "seeds": 16, "record": 20},
    "env": {"name": "bernoulli", "means": [0.3, 0.4, 0.5, 0.6, 0.7]},     # K = 5 follows
    "learner": [{"name": "tutorial_greedy", "bonus": [0.01, 0.1, 1.0, 10.0, 100.0]},
                {"name": "ucb1"},
                {"name": "uniform"}],
    "plot": {"logx": True},
}


def main(out: Path) -> None:
    results = banditjax.run(CONFIG, out=out / "compare", force=True)
    print(results.summary()[["setting", "hp.bonus", "regret_mean", "regret_se"]])

    # 3. The curves (log-y is chosen by itself: uniform's regret is far above the others) and
    #    the sensitivity plot, final regret against the bonus with 95% bands (log-x: the
    #    bonuses span four decades); banditjax run has drawn both into the folder already
    #    (regret.png, sensitivity_bonus.png), the CLI redraws them with `banditjax plot DIR`
    #    and `banditjax plot DIR --vs bonus [--at T]`.
    results.plot().savefig(out / "curves.png")
    results.sensitivity("bonus").savefig(out / "sensitivity_bonus.png")

    # 4. The paper table: mean +- 95% CI per setting, the best in bold (`banditjax table DIR
    #    --format latex` gives the LaTeX).
    print(results.paper_table())

    # 5. Check a bound: `banditjax bounds DIR` from Python. UCB1 (c = 2) on [0, 1] rewards has
    #    Auer et al.'s finite-time bound; its mean regret must stay below it at every recorded t.
    from experiments.bounds_command import run_bounds

    bounds = run_bounds(out / "compare", samples=200, plot=False).set_index("setting")
    ucb1 = bounds.loc["ucb1"]
    print(f"ucb1: final regret {ucb1['final_regret']:.1f}, Auer et al.'s bound "
          f"{ucb1['upper_bound_final']:.1f}, holds: {bool(ucb1['upper_bound_holds'])}")
    assert ucb1["upper_bound_holds"], "UCB1's finite-time bound is violated"
    print(f"figures: {out / 'curves.png'}, {out / 'sensitivity_bonus.png'}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder))
