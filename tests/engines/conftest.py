"""The engines under test: each comparison with the pandas engine runs on every engine of
:data:`ci_ml.engines.ENGINES`; engine spark on one local session for the whole run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ci_ml import engines

# small and quiet: 2 local cores, 4 shuffle partitions (Spark's default 200 are 200 tasks
# per join or group on rows that fit in one), no web UI, no progress bars
SPARK_TEST_CONF = {
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.log.level": "ERROR",
}


@pytest.fixture(scope="session")
def spark_session() -> Iterator[Any]:
    """One local Spark session (local[2]) for every test; engine spark reuses it."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[2]").appName("ci-ml tests")
    for key, value in SPARK_TEST_CONF.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    yield spark
    spark.stop()


# engine spark's cases take about two minutes on 2 shared cores (the JVM's start and warm-up)
ENGINE_PARAMS = [
    pytest.param(name, marks=pytest.mark.slow) if name == "spark" else name
    for name in sorted(engines.ENGINES)
]


@pytest.fixture(params=ENGINE_PARAMS)
def engine(request: pytest.FixtureRequest) -> str:
    """Each engine of ci_ml.engines in turn (spark on the session-scoped local session)."""
    if request.param == "spark":
        request.getfixturevalue("spark_session")
    return str(request.param)
