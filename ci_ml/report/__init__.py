"""The human report (``report.md``): the PR comment, the job summary.

:func:`~ci_ml.report.render.render` writes it from the run records (verdict first, then the
gates, metrics, charts, what changed, per-class tables, slices, data checks);
:func:`~ci_ml.report.experiments.experiments_table` heads it for ``ci-ml experiments``.
"""

from ci_ml.report.changes import SHOWN_CHANGES
from ci_ml.report.experiments import experiments_table
from ci_ml.report.markdown import ICONS, table
from ci_ml.report.render import headline, render

__all__ = ["ICONS", "SHOWN_CHANGES", "experiments_table", "headline", "render", "table"]
