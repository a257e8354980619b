"""Evaluation: the candidate and production predicted on the same holdout rows and compared.

``predict`` (a model's predictions and the candidate's metrics), ``metrics`` (the metric
table), ``stats`` (paired intervals: DeLong, the joint-count bootstrap, paired t),
``multiclass`` and ``ovr`` (the metrics and paired intervals of three classes or more),
``baseline`` (production fetched from the registry and checked), ``compare`` (what is
compared: overall, slices, latency, churn), ``curves`` (both models' curves on fixed grids),
``record`` (evaluation.json, built without I/O), and for binary holdouts larger than memory
``streaming`` (the comparison from record batches reduced to sufficient statistics),
``binned_auc`` (DeLong from score histograms, with its rounding bounds) and ``outofcore``
(a Parquet holdout streamed through both models). The evaluate step in :mod:`ci_ml.api`
is the entry point.
"""
