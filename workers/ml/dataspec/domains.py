"""Domains of a loaded table: row masks, value labels for filters, row counts."""

from __future__ import annotations

import numpy as np

from workers.ml.dataspec.base import DatasetError
from workers.ml.dataspec.parts import DomainSpec
from workers.ml.dataspec.spec import DatasetSpec
from workers.ml.dataspec.table import LoadedTable
from workers.ml.filters import FilterError, evaluate


def domain_mask(table: LoadedTable, domain: DomainSpec) -> np.ndarray:
    """Boolean mask of the table's rows in the domain (none for has = nothing
    without a filter)."""
    if not domain.clauses:
        return np.zeros(table.row_count, dtype=bool)
    try:
        return evaluate(domain.clauses, table.frame, labels=value_labels(table.spec))
    except FilterError as exc:
        raise DatasetError(
            f"domain '{domain.name}' (filter '{domain.filter}'): {exc}"
        ) from None


def value_labels(spec: DatasetSpec) -> dict[str, dict[str, str]]:
    """Column -> {code: label} for the filters: a filter may name either."""
    return {column: dict(pairs) for column, pairs in spec.value_labels}


def validate_domains(
    spec: DatasetSpec, table: LoadedTable
) -> dict[str, dict[str, int]]:
    """Rows and positives per domain; a domain that should hold data must."""
    result: dict[str, dict[str, int]] = {}
    for domain in spec.domains:
        mask = domain_mask(table, domain)
        rows = int(mask.sum())
        if rows == 0 and domain.has != "nothing":
            raise DatasetError(
                f"domain '{domain.name}' matches no rows (filter '{domain.filter}'); "
                f"a domain with has = '{domain.has}' needs rows"
            )
        result[domain.name] = {"rows": rows, "positives": int(table.y[mask].sum())}
    return result
