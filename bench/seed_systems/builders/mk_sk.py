"""The scikit-learn Flask app's and KServe's model: RandomForestClassifier(100 trees) on digits, joblib."""

import sys

import joblib
import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier

out = sys.argv[1]
X, y = load_digits(return_X_y=True)
rf = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
joblib.dump(rf, f"{out}/rf.joblib")
np.save(f"{out}/sample.npy", X[:20].astype(np.float32))
