"""Writes tests/data/logged.csv, the small log of bandit feedback the replay tests read.

300 rows (seed 0): context x in R^2 with N(0, I) entries (columns x0, x1), 3 arms, the logged arm
uniform (propensity 1/3), reward Bernoulli(sigmoid(<theta_a, x> + b_a)) with theta and b below.
Run from the repository root: python tests/data/make_logged.py
"""
from pathlib import Path

import numpy as np
import pandas as pd

THETA = np.array([[1.5, 0.0], [0.0, 1.5], [-1.0, -1.0]])
BIAS = np.array([0.0, 0.3, -0.3])

rng = np.random.default_rng(0)
x = rng.normal(size=(300, 2))
action = rng.integers(0, 3, size=300)
mean = 1.0 / (1.0 + np.exp(-(np.sum(x * THETA[action], axis=1) + BIAS[action])))
reward = (rng.random(300) < mean).astype(int)
frame = pd.DataFrame({"x0": np.round(x[:, 0], 4), "x1": np.round(x[:, 1], 4),
                      "action": action, "reward": reward, "propensity": np.round(1 / 3, 6)})
frame.to_csv(Path(__file__).with_name("logged.csv"), index=False)
