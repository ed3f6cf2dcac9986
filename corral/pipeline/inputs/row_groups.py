"""A big Parquet input cut at row-group boundaries: each piece reads only its row groups.

Parquet keeps each row group's size and row count in the file's footer, so the cuts cost one footer
read, and a task's ranged reads (local disk, Beam filesystems, HTTP Range) fetch its row groups
alone. Rows are numbered from 1 across the whole file, whatever the cut, so a row's `file#n`
location (and an id made from it) does not depend on the piece size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from corral.core.fs import open_read

BATCH_ROWS = 256  # rows decoded at a time (a GitHub row holds a source file of up to 1 MiB)


def row_group_cuts(path: str, piece_size: int) -> list[int]:
    """Row-group indices where pieces start, and the count at the end: consecutive row groups
    gathered until their compressed bytes reach `piece_size` (one piece: [0, count])."""
    import pyarrow.parquet as pq

    with open_read(path) as raw:
        meta = pq.ParquetFile(raw).metadata
    cuts, held = [0], 0
    for i in range(meta.num_row_groups):
        if held >= piece_size:
            cuts.append(i)
            held = 0
        group = meta.row_group(i)
        held += sum(group.column(c).total_compressed_size for c in range(group.num_columns))
    return [*cuts, meta.num_row_groups]


def iter_rows(path: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number in the file, row) of row groups [start, end) (all by default)."""
    import pyarrow.parquet as pq

    with open_read(path) as raw:
        pf = pq.ParquetFile(raw)
        end = pf.metadata.num_row_groups if end is None else end
        n = sum(pf.metadata.row_group(i).num_rows for i in range(start))
        if end <= start:
            return
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=list(range(start, end))):
            for row in batch.to_pylist():
                n += 1
                yield n, row
