"""Monitoring the production model on recent data (``ci-ml monitor``).

``sources`` (the production version and the recent rows: files, DVC, the request log,
labels), ``drift`` (per-feature and prediction drift by effect size), ``decay`` (metrics on
labelled recent rows with intervals), ``check`` (the status and monitor-report.json;
:func:`ci_ml.monitor.check.run` is the entry point), ``report`` (the Markdown) and
``issues`` (one GitHub issue per problem, the retrain dispatch).
"""
