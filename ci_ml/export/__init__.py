"""Export to a language-neutral format: ONNX conversion and the parity gate.

``convert`` (skl2onnx export of the built-in pipelines), ``boosters`` (the converters of
XGBoost, LightGBM and CatBoost boosters) and ``parity`` (the export's answers against the
original's on the whole holdout); the ONNX Runtime predictor that serving and the parity gate
use is :mod:`ci_ml.models.runtime`. Needs ``pip install 'ci-ml[onnx]'``; the export step is
:func:`ci_ml.api.export`.
"""
