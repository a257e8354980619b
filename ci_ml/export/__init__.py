"""Export to a language-neutral format: ONNX conversion, its runtime, and the parity gate.

``convert`` (skl2onnx export of the built-in pipelines), ``runtime`` (the ONNX Runtime
predictor that serving and the parity gate use) and ``parity`` (the export's answers against
the original's on the whole holdout). Needs ``pip install 'ci-ml[onnx]'``; the export step
is :func:`ci_ml.api.export`.
"""
