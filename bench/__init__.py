"""Benchmarks and load tests; each prints a table against a baseline measured in the same run.

Results are recorded in ``docs/benchmarks.md``.
"""


def table(title: str, rows: list[list[str]]) -> str:
    """A plain fixed-width table (the first row is the header)."""
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    lines = [title]
    for n, row in enumerate(rows):
        lines.append(
            "  ".join(
                cell.rjust(w) if k else cell.ljust(w)
                for k, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"
