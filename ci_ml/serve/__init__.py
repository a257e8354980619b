"""The model web service (``ci-ml serve``; needs ``pip install 'ci-ml[serve]'``).

``input`` (request bodies to checked columns), ``model`` (a registry version loaded and
smoke-tested), ``batch`` (prediction threads that merge waiting requests), ``reload`` (the
served model swapped without downtime), ``requestlog`` (sampled request logging),
``prometheus`` (the /metrics text), ``service`` (all of it together), ``routes`` (HTTP) and
``server`` (uvicorn on a socket; :func:`ci_ml.serve.server.serve` is the entry point).
"""
