"""The ``ci-ml`` command line (:mod:`ci_ml.cli.app`): thin commands over the library.

``common`` (shared flags, the error decorator, JSON printing), ``app`` (the typer app and the
table of commands) and one module of plain functions per area: ``steps``, ``registry``,
``deploy``, ``serve``, ``monitor``, ``export``, ``github``.
"""
