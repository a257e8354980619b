"""Evaluation: the candidate and production predicted on the same holdout rows and compared.

``predict`` (a model's predictions and the candidate's metrics), ``metrics`` (the metric
table), ``stats`` (paired intervals: DeLong, the joint-count bootstrap, paired t),
``multiclass`` and ``ovr`` (the metrics and paired intervals of three classes or more),
``baseline`` (production fetched from the registry and checked), ``compare`` (what is
compared: overall, slices, latency, churn), ``curves`` (both models' curves on fixed grids)
and ``record`` (evaluation.json, built without I/O). The evaluate step in :mod:`ci_ml.api`
is the entry point.
"""
