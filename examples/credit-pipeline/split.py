"""The `split` stage: hold out a seeded, stratified share of the credit data.

Writes data/train.csv (what `train` fits on) and data/holdout.csv (what ci-ml judges the
model on; the model never sees it). Parameters: `split` in params.yaml.
"""

from pathlib import Path

import pandas as pd
import yaml
from sklearn.model_selection import train_test_split

params = yaml.safe_load(Path("params.yaml").read_text())["split"]
frame = pd.read_csv("../../data/credit_data.csv")
train, holdout = train_test_split(
    frame,
    test_size=params["holdout_fraction"],
    random_state=params["seed"],
    stratify=frame["Status"],
)
Path("data").mkdir(exist_ok=True)
train.to_csv("data/train.csv", index=False)
holdout.to_csv("data/holdout.csv", index=False)
