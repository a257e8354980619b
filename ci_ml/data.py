"""Data: DVC pull, the data version, loading CSV/Parquet, the train/holdout split.

Every row has an identity: a 64-bit hash of its values in the identity columns —
``data.id`` when configured, else the columns production's identity was made of (while
the file still has them all), else every column of the file but the target. Column
order, added columns and ``data.drop`` do not change it (see docs/data.md).

The split is deterministic and leak-free by construction: rows are grouped by their
identity, so identical rows always land on the same side, and groups are ranked by a
seeded hash of their own key (per class for classification); the first ``fraction`` of
each class goes to the holdout. Adding rows moves old rows across the cut only near it,
because a group's rank depends on its key, not on its position in the file.

The frames keep every column of the file (the data gates check the data as it is);
``data.drop`` only takes columns out of the model's features.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ci_ml.config import DataConfig, Task
from ci_ml.errors import BadInputError, DataError, MissingExtra, ServiceError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

READERS = {".csv": "read_csv", ".parquet": "read_parquet", ".pq": "read_parquet"}
MAX_CLASSES_FOR_INFERENCE = 10


@dataclass(frozen=True)
class TrainSample:
    """How an out-of-core engine drew the training rows from the train file: ``rows`` of its
    ``file_rows``, by ``seed`` and ``method`` (model.json's ``train_sample``)."""

    rows: int
    file_rows: int
    seed: int
    method: str


@dataclass(frozen=True)
class Dataset:
    """Train and holdout rows of one data version, ready for the steps.

    ``identity`` names the columns the rows' identities (``train_ids``, ``holdout_ids``:
    one 64-bit hash per row, see :func:`row_ids`) are made of. ``classes`` (classification)
    holds every label of the target as text, in the fixed order the models' probability
    columns take (sorted as scikit-learn sorts its ``classes_``); ``positive_class`` is set
    for a binary target only. ``train_sample`` says how the training rows were drawn when
    they are a sample of the train file (engines duckdb and spark); None: every row.
    """

    train: pd.DataFrame
    holdout: pd.DataFrame
    target: str
    task: Task
    features: list[str]
    positive_class: Any = None
    identity: tuple[str, ...] = ()
    train_ids: np.ndarray | None = None
    holdout_ids: np.ndarray | None = None
    classes: tuple[str, ...] = ()
    train_sample: TrainSample | None = None

    @property
    def multiclass(self) -> bool:
        """A classification target with three classes or more."""
        return self.task == "classification" and len(self.classes) > 2

    def x(self, part: str) -> pd.DataFrame:
        return getattr(self, part)[self.features]

    def y(self, part: str) -> pd.Series:
        return getattr(self, part)[self.target]


# --- DVC ---------------------------------------------------------------------------


def dvc_targets(config: DataConfig, root: Path) -> list[str]:
    """The ``.dvc`` files that track the configured data (explicit or found)."""
    if config.dvc_targets is not None:
        return list(config.dvc_targets)
    found = []
    for path in [config.path, config.holdout.file]:
        if path:
            dvc_file = find_dvc_file(root, Path(path))
            if dvc_file is not None and str(dvc_file) not in found:
                found.append(str(dvc_file))
    return found


def find_dvc_file(root: Path, path: Path) -> Path | None:
    """``<path>.dvc`` or that of the nearest tracked parent directory."""
    for candidate in [path, *path.parents]:
        if str(candidate) in ("", "."):
            break
        dvc_file = candidate.with_name(candidate.name + ".dvc")
        if (root / dvc_file).is_file():
            return dvc_file
    return None


def dvc_pull(root: Path, targets: list[str]) -> None:
    """``dvc pull`` the targets; a remote that lacks the data is a ServiceError."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    logging.disable(logging.WARNING)  # DVC's warnings repeat what its error says
    try:
        with Repo(str(root)) as repo:
            # DVC reads a relative target from the current directory; ours are the project's
            repo.pull(targets=[str(root / target) for target in targets] or None)
    except DvcException as exc:
        raise ServiceError(_explain_dvc(exc, targets)) from None
    except ImportError as exc:  # DVC's plugin for the remote's storage is not installed
        raise _missing_remote_library(exc, targets) from None
    finally:
        logging.disable(logging.NOTSET)


def _missing_remote_library(exc: ImportError, targets: list[str]) -> BadInputError:
    text = " ".join(str(exc).split())
    what = ", ".join(targets) or "the tracked data"
    found = re.search(r"'(dvc-[\w-]+)'", text)
    package = found.group(1) if found else exc.name
    if package in ("dvc-s3", "dvc_s3", "s3fs"):
        return MissingExtra(f"dvc pull of {what} from an s3:// remote", "s3", package)
    return BadInputError(
        f"dvc pull of {what} needs a library for its remote ({text}); install it "
        f"with: pip install {package or 'the DVC plugin of the remote'}."
    )


def _explain_dvc(exc: Exception, targets: list[str]) -> str:
    text = " ".join(str(exc).split())
    what = ", ".join(targets) or "the tracked data"
    if "unsaved files" in text:
        raise DataError(
            f"dvc pull of {what} stopped: the workspace has changes that DVC has not saved "
            f"({text.split('to force.')[-1].strip()}); "
            "version them with 'dvc add' or discard them with 'dvc checkout --force'."
        )
    if (
        "missing" in text.lower()
        or "failed to pull" in text.lower()
        or "failed to fetch" in text.lower()
    ):
        return (
            f"dvc pull of {what} failed: the DVC remote does not have the data ({text}); "
            "run 'dvc push' where the data exists, or check the remote in .dvc/config."
        )
    return (
        f"dvc pull of {what} failed: {text}; "
        "check the remote with 'dvc remote list' and 'dvc status -c'."
    )


def data_version(root: Path, config: DataConfig) -> str:
    """The DVC hash of the data (``md5:...``), or a sha256 of the file if untracked.

    The hash is read from the ``.dvc`` file, so the tracked files are first checked to still be
    what it records: data edited after ``dvc pull`` has no version, and is refused.
    """
    dvc_file = find_dvc_file(root, Path(config.path))
    if dvc_file is not None:
        outs = (yaml.safe_load((root / dvc_file).read_text()) or {}).get("outs") or []
        if outs and outs[0].get("md5"):
            check_workspace(root, config)
            return "md5:" + str(outs[0]["md5"])
    path = root / config.path
    if not path.is_file():
        raise DataError(
            f"{path} does not exist; run 'ci-ml pull' or check data.path in ci-ml.yaml."
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return "sha256:" + digest


def check_workspace(root: Path, config: DataConfig) -> None:
    """Refuse tracked data files that differ from what their ``.dvc`` file records.

    DVC compares the files with the hashes it recorded (its state cache keeps this cheap for
    unchanged files); a tracked folder counts as changed when any file in it changed.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    files = [root / name for name in [config.path, config.holdout.file] if name]
    logging.disable(logging.WARNING)
    try:
        with Repo(str(root)) as repo:
            outs = [o for o in repo.index.outs if any(_inside(f, Path(o.fs_path)) for f in files)]
            changed = [(out, status) for out in outs for status in out.workspace_status().values()]
    except (DvcException, OSError) as exc:
        text = " ".join(str(exc).split())
        raise DataError(
            f"cannot check that the data in {root} is the version DVC records ({text}); "
            "run 'ci-ml pull' in the DVC repository of the project."
        ) from None
    finally:
        logging.disable(logging.NOTSET)
    if not any(_inside(files[0], Path(out.fs_path)) for out in outs):
        raise DataError(
            f"cannot check that {config.path} is the version DVC records: no DVC output of "
            f"{root} holds it (is its .dvc file ignored?); check with 'dvc status', then run "
            "'ci-ml pull'."
        )
    if changed:
        out, status = changed[0]
        where, dvc_file = (_shown(Path(p), root) for p in (out.fs_path, out.stage.path))
        raise DataError(
            f"the tracked data '{where}' is {status}: it differs from the version "
            f"{dvc_file} records, so it was changed after 'dvc pull' and no data version "
            f"describes it; record the change with 'dvc add {where}' (and commit {dvc_file}) "
            f"or restore the recorded data with 'dvc checkout {dvc_file}', then run again."
        )


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve() == folder.resolve() or folder.resolve() in path.resolve().parents


def _shown(path: Path, root: Path) -> str:
    return str(path.resolve().relative_to(root.resolve())) if _inside(path, root) else str(path)


# --- loading -----------------------------------------------------------------------


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file; anything unreadable is a DataError.

    A CSV is typed a whole column at a time (pandas' chunked reading would give one column
    numbers in some rows and text in others, depending on the file's size).
    """
    import pandas as pd

    reader = READERS.get(path.suffix.lower())
    if reader is None:
        allowed = ", ".join(READERS)
        raise DataError(f"{path}: unsupported file type '{path.suffix}'; use one of {allowed}.")
    if not path.is_file():
        raise DataError(f"{path} does not exist; run 'ci-ml pull' first or check data.path.")
    try:
        check_header(path)
        options = {"low_memory": False} if reader == "read_csv" else {}
        frame = getattr(pd, reader)(path, **options)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; it needs a header row and data rows.") from None
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, OSError) as exc:
        kind = "CSV" if reader == "read_csv" else "Parquet"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path} is not a readable {kind} file ({first}).") from None
    if frame.empty:
        raise DataError(f"{path} has a header but no data rows.")
    return frame


def check_header(path: Path) -> None:
    """Refuse a header that names a column twice (every engine reads the file's own names)."""
    _unique_names(path, _header(path, READERS[path.suffix.lower()]))


def _header(path: Path, reader: str) -> list[str]:
    """The column names as the file has them (pandas renames a repeated CSV name 'x' to 'x.1')."""
    import pandas as pd

    if reader == "read_parquet":
        import pyarrow.parquet as pq

        return [str(name) for name in pq.read_schema(path).names]
    first = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    return [str(name) for name in first.iloc[0].tolist()] if len(first) else []


def _unique_names(path: Path, names: list[str]) -> None:
    seen: dict[str, list[int]] = {}
    for number, name in enumerate(names, start=1):
        if name.strip():  # pandas names blank headers 'Unnamed: N', each its own
            seen.setdefault(name, []).append(number)
    repeated = {name: where for name, where in seen.items() if len(where) > 1}
    if repeated:
        name, where = next(iter(repeated.items()))
        positions = ", ".join(map(str, where))
        raise DataError(
            f"{path}: the column name {name!r} appears {len(where)} times in the header "
            f"(columns {positions}); every column needs its own name (pandas would read the "
            f"second as '{name}.1', a feature of its own): rename or remove the repeats."
        )


def load_dataset(root: Path, config: DataConfig, identity: list[str] | None = None) -> Dataset:
    """Load, check and split the configured data.

    ``identity``: the identity columns production's rows were keyed on (pull.json records
    them); used while the file has them all and ``data.id`` is not set.
    """
    if config.holdout.file:
        paths = (root / config.path, root / config.holdout.file)
        return with_holdout(read_table(paths[0]), read_table(paths[1]), config, identity, paths)
    frame = _prepared(read_table(root / config.path), config, root / config.path)
    task = config.task or infer_task(frame[config.target])
    features = [c for c in frame.columns if c != config.target and c not in config.drop]
    positive, classes = _classes(frame[config.target], config, task)
    columns = identity_columns(frame.columns, config, identity)
    ids = row_ids(frame, columns)
    train_idx, holdout_idx = split_rows(frame, ids, config.target, task, config.holdout)
    return Dataset(
        frame.iloc[train_idx].reset_index(drop=True),
        frame.iloc[holdout_idx].reset_index(drop=True),
        config.target,
        task,
        features,
        positive,
        columns,
        ids[train_idx],
        ids[holdout_idx],
        classes,
    )


def with_holdout(
    frame: pd.DataFrame,
    holdout: pd.DataFrame | None,
    config: DataConfig,
    identity: list[str] | None,
    paths: tuple[Path, Path],
    *,
    task: Task | None = None,
    counts: pd.Series | None = None,
) -> Dataset:
    """The dataset of train rows and holdout rows read from their own files (``paths``),
    checked and prepared as :func:`load_dataset` does.

    The out-of-core engines give the whole data's ``task`` and target ``counts`` (most
    frequent first), as the rows here may be a sample of it; by default both come from
    these rows (a class only the holdout file has is still a class: the data gates name it).
    """
    frame = _prepared(frame, config, paths[0])
    # no holdout rows (an out-of-core engine streams them later): the train file's columns
    holdout = frame.head(0) if holdout is None else _prepared(holdout, config, paths[1])
    task = task or config.task or infer_task(frame[config.target])
    features = [c for c in frame.columns if c != config.target and c not in config.drop]
    _classes(frame[config.target], config, task)  # a single training class is refused
    columns = identity_columns(frame.columns, config, identity)
    _same_columns(frame, holdout, paths[1])
    if counts is None:
        both = frame[config.target].tolist() + holdout[config.target].tolist()
        counts = _series(both, config.target).value_counts()
    positive, classes = class_labels(counts, config) if task == "classification" else (None, ())
    return Dataset(
        frame,
        holdout,
        config.target,
        task,
        features,
        positive,
        columns,
        row_ids(frame, columns),
        row_ids(holdout, columns),
        classes,
    )


def identity_columns(
    columns: Sequence[Any], config: DataConfig, inherited: list[str] | None
) -> tuple[str, ...]:
    """The columns a row's identity is made of, among the data's ``columns`` (names):
    ``data.id``, else ``inherited`` (production's) when the file still has them all, else
    every column but the target, by name."""
    names = list(columns)
    if config.id:
        missing = [c for c in config.id if c not in names]
        if missing:
            raise DataError(
                f"data.id names column(s) {', '.join(missing)} that the data does not have; "
                f"columns are {', '.join(map(str, names[:12]))}."
            )
        return tuple(config.id)
    if inherited and all(c in names for c in inherited):
        return tuple(inherited)
    return tuple(sorted(str(c) for c in names if c != config.target))


def _prepared(frame: pd.DataFrame, config: DataConfig, path: Path) -> pd.DataFrame:
    """Check the target and columns; string columns become plain ``object``."""
    if config.target not in frame.columns:
        cols = ", ".join(map(str, frame.columns[:12]))
        raise DataError(
            f"{path}: target column '{config.target}' not found; columns are {cols}; "
            "fix data.target in ci-ml.yaml."
        )
    missing_drop = [c for c in config.drop if c not in frame.columns]
    if missing_drop:
        raise DataError(f"{path}: data.drop names columns that do not exist: {missing_drop}.")
    empty = [str(c) for c in frame.columns if c not in config.drop and frame[c].isna().all()]
    if empty:
        raise DataError(
            f"{path}: column(s) {', '.join(empty)} have no values at all; "
            "fix the data or list them under data.drop."
        )
    for column in frame.columns:
        is_feature = column != config.target and column not in config.drop
        if frame[column].dtype.kind not in "biufcmM":
            if column not in config.drop:
                _one_kind(frame[column], path)
            frame[column] = frame[column].astype(object)
        elif frame[column].dtype.kind in "fc" and is_feature:
            _finite(frame[column], path)
    return frame


def _one_kind(column: pd.Series, path: Path) -> None:
    """Refuse a column of text mixed with other values (what pandas gives when it types a CSV
    in chunks, or a reader that keeps Python objects): no kind of column fits both."""
    import pandas as pd

    if pd.api.types.infer_dtype(column, skipna=True) not in ("mixed", "mixed-integer"):
        return
    examples: dict[type, Any] = {}
    for value in column.dropna():
        examples.setdefault(type(value), value)
        if len(examples) == 2:
            break
    shown = " and ".join(f"{v!r} ({t.__name__})" for t, v in examples.items())
    raise DataError(
        f"{path}: column '{column.name}' mixes text and other values (e.g. {shown}); "
        "make it all numbers (missing values as empty cells) or all text."
    )


def _finite(column: pd.Series, path: Path) -> None:
    import numpy as np

    infinite = np.isinf(column.to_numpy(dtype=float, na_value=np.nan))
    if infinite.any():
        raise DataError(
            f"{path}: column '{column.name}' has {int(infinite.sum())} infinite value(s) "
            f"(inf or -inf, e.g. in data row {int(np.flatnonzero(infinite)[0]) + 1}); "
            "replace them with numbers, or leave the cells empty (missing values are imputed)."
        )


def _same_columns(train: pd.DataFrame, holdout: pd.DataFrame, path: Path) -> None:
    missing = [c for c in train.columns if c not in holdout.columns]
    if missing:
        raise DataError(f"{path}: the holdout file lacks column(s) {', '.join(map(str, missing))}.")


def infer_task(target: pd.Series) -> Task:
    """Classification for labels and few distinct integers, regression otherwise."""
    values = target.dropna()
    if values.dtype.kind == "f" and not (values == values.round()).all():
        return "regression"
    if values.dtype.kind in "iuf" and values.nunique() > MAX_CLASSES_FOR_INFERENCE:
        return "regression"
    return "classification"


def _classes(target: pd.Series, config: DataConfig, task: Task) -> tuple[Any, tuple[str, ...]]:
    """The positive class (binary targets only) and every class as text, in sorted order."""
    if task != "classification":
        return None, ()
    return class_labels(target.value_counts(), config)


def class_labels(counts: pd.Series, config: DataConfig) -> tuple[Any, tuple[str, ...]]:
    """:func:`_classes` from the target's value counts (most frequent first)."""
    import numpy as np

    if len(counts) < 2:
        raise DataError(
            f"target column '{config.target}' has a single class ({counts.index[0]!r}); "
            "a classifier needs at least two."
        )
    classes = tuple(str(v) for v in np.unique(counts.index.to_numpy()))
    if len(counts) > 2:
        if config.positive_class is not None:
            raise DataError(
                f"data.positive_class {config.positive_class!r} is for a binary target, but "
                f"'{config.target}' has {len(counts)} classes ({_listed(classes)}); remove "
                "it: a multiclass model is judged on every class (see docs/multiclass.md)."
            )
        return None, classes
    if config.positive_class is None:
        return counts.index[-1], classes  # the rarer class: what one usually wants to catch
    labels = {str(v): v for v in counts.index}
    if str(config.positive_class) not in labels:
        raise DataError(
            f"data.positive_class {config.positive_class!r} is not a value of "
            f"'{config.target}' (found {sorted(labels)})."
        )
    return labels[str(config.positive_class)], classes


def _series(values: list[Any], name: str) -> pd.Series:
    import pandas as pd

    return pd.Series(values, name=name).dropna()


def _listed(classes: tuple[str, ...], most: int = 8) -> str:
    shown = ", ".join(classes[:most])
    return shown + (f", … ({len(classes) - most} more)" if len(classes) > most else "")


# --- split -------------------------------------------------------------------------


def row_keys(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """A 64-bit hash per row of its feature values (equal rows, equal keys)."""
    import pandas as pd

    return pd.util.hash_pandas_object(frame[features], index=False).to_numpy()


def row_ids(frame: pd.DataFrame, columns: tuple[str, ...] | list[str]) -> np.ndarray:
    """A row's identity: a 64-bit hash of its values in ``columns``, in the order given.

    Values are hashed in a canonical form — numbers as float64, everything else as text,
    missing as missing — so a column read as integers once and as floats (or as text)
    another time gives the same identity.
    """
    import numpy as np
    import pandas as pd

    canonical = {}
    for i, column in enumerate(columns):
        values = frame[column]
        if values.dtype.kind in "biuf":
            canonical[str(i)] = values.astype(np.float64)
        else:
            canonical[str(i)] = (
                values.astype(object)
                .where(values.notna(), None)
                .map(lambda v: None if v is None else str(v))
            )
    table = pd.DataFrame(canonical, index=frame.index)
    return pd.util.hash_pandas_object(table, index=False).to_numpy(dtype=np.uint64)


def split_rows(
    frame: pd.DataFrame, keys: np.ndarray, target: str, task: Task, holdout: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified split of rows by their identity ``keys`` (rows of one identity
    stay together); returns (train, holdout) row positions."""
    import numpy as np

    _, first, group = np.unique(keys, return_index=True, return_inverse=True)
    if task == "classification":
        strata = frame[target].to_numpy()[first]
    else:
        strata = np.zeros(len(first), dtype=int)
    # rank groups by a seeded hash of their own key, not by a shuffle of their positions:
    # a shuffle reorders everything when one row is added, moving rows the production
    # model trained on into the holdout it is compared on
    order = seeded_order(keys[first], holdout.seed)
    in_holdout = np.zeros(len(first), dtype=bool)
    for stratum in sorted(set(strata.tolist()), key=str):
        groups = np.flatnonzero(strata == stratum)
        ranked = groups[np.argsort(order[groups], kind="stable")]
        in_holdout[ranked[: max(1, round(holdout.fraction * len(groups)))]] = True
    mask = in_holdout[group]
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def seeded_order(keys: np.ndarray, seed: int) -> np.ndarray:
    """A seeded 64-bit mix (splitmix64) of each key: a fixed pseudo-random order per seed."""
    import numpy as np

    x = keys.astype(np.uint64) ^ np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
