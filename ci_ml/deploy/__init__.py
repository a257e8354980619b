"""Getting a model to production, and only a model that earned it.

- :mod:`~ci_ml.deploy.release`: verify a decision record (digests bind what it judged; the
  gates judged again), promote, tell the serving targets, smoke-test, roll back on failure;
- :mod:`~ci_ml.deploy.smoke`: the smoke test of a served version over HTTP;
- :mod:`~ci_ml.deploy.shadow`: ``ci-ml shadow report``, the decision record of a shadow
  version judged on labelled live traffic, which ``release`` verifies like the gate's.
"""

from ci_ml.deploy.release import deploy_run, rollback

__all__ = ["deploy_run", "rollback"]
