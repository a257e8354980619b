"""The `train` stage: fit a scikit-learn pipeline on data/train.csv, save it with skops.

ci-ml loads model/model.skops through skops (no pickle) and calls predict_proba on the
holdout's feature columns, so the pipeline takes the raw columns and prepares them itself.
Parameters: `train` in params.yaml.
"""

from pathlib import Path

import pandas as pd
import skops.io as sio
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

params = yaml.safe_load(Path("params.yaml").read_text())["train"]
train = pd.read_csv("data/train.csv")
x, y = train.drop(columns=["Status"]), train["Status"]
numeric = [c for c in x.columns if x[c].dtype.kind in "biuf"]
categorical = [c for c in x.columns if c not in numeric]
prepare = ColumnTransformer(
    [
        ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        (
            "categorical",
            make_pipeline(
                SimpleImputer(strategy="constant", fill_value="missing"),
                OneHotEncoder(handle_unknown="ignore"),
            ),
            categorical,
        ),
    ],
    sparse_threshold=0.0,
)
model = HistGradientBoostingClassifier(
    max_iter=params["max_iter"],
    learning_rate=params["learning_rate"],
    max_leaf_nodes=params["max_leaf_nodes"],
    random_state=params["seed"],
)
pipeline = Pipeline([("prepare", prepare), ("model", model)]).fit(x, y)
Path("model").mkdir(exist_ok=True)
sio.dump(pipeline, "model/model.skops")
