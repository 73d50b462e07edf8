"""deepad: deep anomaly detection -- learn what normal looks like, flag what is not.

Quick start::

    from deepad.detectors import DEFAULT
    detector = DEFAULT(contamination=0.05).fit(X_train)
    scores = detector.decision_function(X_new)      # higher = more anomalous
    flags = detector.predict(X_new)                 # 1 = anomaly
    detector.save("model/"); detector = deepad.load("model/")
"""

__version__ = "0.1.0"

from deepad.persistence import load, save  # noqa: E402

__all__ = ["__version__", "load", "save"]
