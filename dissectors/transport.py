"""Checks shared by the transport dissectors: how much of a fixed header is there.

Zeek's rule (src/packet_analysis/protocol/ip/IPBasedAnalyzer.cc,
CheckHeaderTrunc): a payload whose stated length is below the minimum header
is ``truncated_header``; one that is long enough on paper but not captured
is ``internally_truncated_header``.
"""

from __future__ import annotations

import numpy as np

from .wire import Fields, Layer


def header_present(layer: Layer, size: int, out: Fields) -> np.ndarray:
    """``bool[k]``: whether ``size`` header bytes were captured; flags the Zeek weird where not."""
    captured = layer.has(size)
    stated = layer.start + size <= layer.stated_end
    out.flag(layer.rows[~stated], "truncated_header")
    out.flag(layer.rows[stated & ~captured], "internally_truncated_header")
    return captured
