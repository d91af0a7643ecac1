"""Small helpers shared by the report's sections: counting, set columns, quantiles."""

from __future__ import annotations

import numpy as np
import pandas as pd

UNSET = "(unset)"


def has_columns(frame: pd.DataFrame | None, *columns: str) -> bool:
    """True when ``frame`` exists and has every column named."""
    return frame is not None and all(column in frame.columns for column in columns)


def as_text(series: pd.Series, unset: str = UNSET) -> pd.Series:
    """The series as plain Python-object text, ``unset`` for nulls and empty strings (Zeek's ``-``)."""
    text = series.astype("string").fillna(unset)
    text = text.where(text.str.len() > 0, unset)
    return text.astype(object)


def counts(series: pd.Series, label: str, top: int | None, total: int | None = None,
           unset: str | None = UNSET, count_name: str = "count") -> pd.DataFrame:
    """``label``, ``count`` and ``share %`` of each value, most frequent first, the first ``top``.

    Nulls count as ``unset`` (or are dropped when ``unset`` is None).  ``share %`` is
    relative to ``total`` (default: all values counted, nulls included when kept).
    """
    values = series.dropna() if unset is None else as_text(series, unset)
    if unset is None:
        values = values.astype("string").astype(object)
    tally = values.value_counts(sort=False)
    tally = tally.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
    denominator = total if total is not None else int(tally.sum())
    if top is not None:
        tally = tally.head(top)
    out = pd.DataFrame({label: tally.index.astype(str).to_numpy(dtype=object),
                        count_name: tally.to_numpy(dtype=np.int64)})
    out["share %"] = percent(out[count_name], denominator)
    return out


def percent(part, whole) -> pd.Series | float:
    """``100 * part / whole`` rounded to 2 decimals (0 where ``whole`` is 0)."""
    if isinstance(part, pd.Series):
        if not whole:
            return pd.Series(0.0, index=part.index)
        return (100.0 * part.astype(float) / float(whole)).round(2)
    return round(100.0 * part / whole, 2) if whole else 0.0


def explode_sets(series: pd.Series) -> pd.Series:
    """Elements of a Zeek ``set``/``vector`` column, one per row (index repeats), nulls and empties dropped.

    Cells may be lists, tuples, sets, numpy arrays, or text with ``,``-separated
    elements (as Zeek's ASCII logs write them); ``-`` and ``(empty)`` count as empty.
    """
    def elements(cell):
        if cell is None or cell is pd.NA:
            return []
        if isinstance(cell, float) and cell != cell:
            return []
        if isinstance(cell, str):
            if cell in ("", "-", "(empty)"):
                return []
            return [part for part in cell.split(",") if part]
        if isinstance(cell, (list, tuple, set, frozenset, np.ndarray)):
            return [str(part) for part in cell if part is not None and part is not pd.NA and str(part) != ""]
        return [str(cell)]

    listed = series.map(elements)
    exploded = listed.explode()
    return exploded.dropna().astype(object)


def set_sizes(series: pd.Series) -> pd.Series:
    """Number of elements of each cell of a set/vector column (0 for null or empty)."""
    exploded = explode_sets(series)
    sizes = exploded.groupby(level=0).size()
    return sizes.reindex(series.index, fill_value=0).astype(np.int64) if len(series) else sizes


def flags(series: pd.Series) -> pd.Series:
    """A Zeek ``bool`` column as plain bool (null false); text ``T``/``F``/``true``/``false`` accepted."""
    if pd.api.types.is_bool_dtype(series):
        return series.fillna(False).astype(bool)
    text = series.astype("string").str.strip().str.lower()
    return text.isin(["t", "true", "1", "yes"]).fillna(False).astype(bool)


def numeric(series: pd.Series) -> np.ndarray:
    """The non-null values of a numeric column as float64."""
    values = pd.to_numeric(series, errors="coerce").astype("Float64")
    return values.dropna().to_numpy(dtype=float)


def quantile_table(values: np.ndarray, unit: str, scale: float = 1.0, label: str = "statistic") -> pd.DataFrame:
    """count, min, mean, median, p90, p99, max of ``values * scale``."""
    column = f"value ({unit})" if unit else "value"
    if not len(values):
        return pd.DataFrame({label: ["count"], column: [0.0]})
    scaled = np.asarray(values, dtype=float) * scale
    rows = [("count", float(len(scaled))), ("min", scaled.min()), ("mean", scaled.mean()),
            ("median", np.percentile(scaled, 50)), ("p90", np.percentile(scaled, 90)),
            ("p99", np.percentile(scaled, 99)), ("max", scaled.max())]
    return pd.DataFrame({label: [name for name, _ in rows], column: [round(float(v), 3) for _, v in rows]})


def histogram(values: np.ndarray, edges: list[float], labels: list[str], label: str,
              count_name: str = "count") -> pd.DataFrame:
    """Counts of ``values`` in ``[edges[i], edges[i+1])`` buckets named ``labels[i]`` (every bucket listed)."""
    values = np.asarray(values, dtype=float)
    tally, _ = np.histogram(values, bins=np.asarray(edges, dtype=float))
    out = pd.DataFrame({label: labels, count_name: tally.astype(np.int64)})
    out["share %"] = percent(out[count_name], len(values))
    return out


def categorical_codes(series: pd.Series, categories: pd.Index) -> np.ndarray:
    """Positions of the series' values in ``categories`` (int64, -1 for null or absent)."""
    if not isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype("string").astype("category")
    codes = series.cat.codes.to_numpy().astype(np.int64)
    mapping = categories.get_indexer(series.cat.categories.astype(str))
    if not len(mapping):
        return np.full(len(series), -1, dtype=np.int64)
    return np.where(codes >= 0, mapping[np.maximum(codes, 0)], -1)


def category_values(series: pd.Series) -> pd.Index:
    """The distinct text values of a (categorical) column, as an Index of str."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return pd.Index(series.cat.categories.astype(str), dtype=object)
    return pd.Index(series.dropna().astype(str).unique(), dtype=object)


def int_array(series: pd.Series, fill: int = -1) -> np.ndarray:
    """A nullable integer column as int64 numpy, ``fill`` for nulls."""
    return series.to_numpy(dtype=np.int64, na_value=fill)


def present(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Boolean numpy mask: the column exists and is non-null (all False when the column is absent)."""
    if column not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return frame[column].notna().to_numpy()
