"""Writes tests/data/classes.csv, the small classification table the dataset tests read.

150 rows, 3 classes ('a', 'b', 'c', 50 rows each) of 4 Gaussian features around class centres
(seed 0), the shape of Fisher's iris data without needing scikit-learn. Run from the repository
root: python tests/data/make_classes.py
"""
from pathlib import Path

import numpy as np
import pandas as pd

rng = np.random.default_rng(0)
centres = np.array([[0.0, 0.0, 0.0, 0.0], [1.5, 0.5, -1.0, 0.0], [0.0, 2.0, 1.0, -1.0]])
labels = np.repeat(np.arange(3), 50)
features = centres[labels] + rng.normal(size=(150, 4))
frame = pd.DataFrame(np.round(features, 4), columns=[f"f{j}" for j in range(4)])
frame["class"] = np.array(["a", "b", "c"])[labels]
frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
frame.to_csv(Path(__file__).with_name("classes.csv"), index=False)
