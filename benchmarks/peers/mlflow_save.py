"""Save a joblib scikit-learn model as an MLflow model folder (run in MLflow's virtualenv).

Run: python mlflow_save.py lr.joblib mlflow-lr/
"""

from __future__ import annotations

import sys

import joblib
import mlflow.sklearn
import numpy as np
import skops.io

model = joblib.load(sys.argv[1])
example = np.zeros((1, model.n_features_in_))
# MLflow 3 saves with skops and refuses types it does not trust by default (a forest's Tree);
# this model was fitted by the benchmark itself.
trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
mlflow.sklearn.save_model(model, sys.argv[2], input_example=example, skops_trusted_types=trusted)
