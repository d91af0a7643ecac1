"""Teredo (RFC 4380 §5.1.1): IPv6 in UDP (port 3544), optionally preceded by an
authentication indicator or an origin indication.

Wireshark fields: ``teredo.auth``, ``teredo.orig`` are not kept; the IPv6
packet inside is dissected like any other.  Wireshark recognises Teredo by
port and by the IPv6 version nibble; so does :func:`dissect`.  Zeek also
recognises it by content on any other port (:func:`looks_like_teredo`), for
connection tracking only (see :func:`dissectors.stack.dissect`).
"""

from __future__ import annotations

import numpy as np

from .wire import Fields, Layer, be16, u8

UDP_PORT = 3544
AUTHENTICATION, ORIGIN = 0x0001, 0x0000
ORIGIN_BYTES = 8
IPV6_HEADER_BYTES = 40
TEREDO_PREFIX = 0x20010000   # RFC 4380 §2.6: 2001:0000::/32


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> Layer:
    """Skip Teredo's optional headers; returns the layer of the payloads that look like IPv6."""
    offset = np.zeros(len(layer), dtype=np.int64)
    for _ in range(2):  # RFC 4380 §5.1.1: authentication first, then origin indication
        readable = layer.has(offset + 2)
        indicator = np.full(len(layer), -1, dtype=np.int64)
        indicator[readable] = be16(data, layer.start[readable] + offset[readable])
        auth = (indicator == AUTHENTICATION) & layer.has(offset + 4)
        auth_length = np.zeros(len(layer), dtype=np.int64)
        position = layer.start[auth] + offset[auth]
        # id length, auth length, then nonce (8 bytes) and confirmation (1 byte).
        auth_length[auth] = 4 + u8(data, position + 2) + u8(data, position + 3) + 9
        origin = indicator == ORIGIN
        offset = offset + auth_length + np.where(origin, ORIGIN_BYTES, 0)
    payload = layer.advance(offset)
    looks_ipv6 = payload.has(40)
    looks_ipv6[looks_ipv6] = (u8(data, payload.start[looks_ipv6]) >> 4) == 6
    return payload.take(looks_ipv6)


def looks_like_teredo(data: np.ndarray, layer: Layer) -> np.ndarray:
    """``bool[k]``: UDP payloads Zeek's protocol detection takes for Teredo (on ports other than 3544).

    Zeek's rule (``TeredoAnalyzer::DetectProtocol``, after the old DPD
    signature ``dpd_teredo``): at least 40 bytes, and either an IPv6 header
    whose source (bytes 8-11) or destination (bytes 24-27) starts with the
    Teredo prefix 2001:0000::/32, or an authentication indicator (second
    byte 1, skipped by its stated lengths) and/or an origin indication
    (second byte 0, 8 bytes) followed by at least 40 bytes starting with
    version nibble 6.
    """
    k = len(layer)
    found = np.zeros(k, dtype=bool)
    candidate = layer.has(IPV6_HEADER_BYTES)
    if not candidate.any():
        return found
    start = layer.start
    first = np.zeros(k, dtype=np.int64)
    second = np.zeros(k, dtype=np.int64)
    first[candidate] = u8(data, start[candidate])
    second[candidate] = u8(data, start[candidate] + 1)
    ipv6 = candidate & ((first >> 4) == 6)
    prefix_at = np.zeros(k, dtype=bool)
    for offset in (8, 24):
        word = np.zeros(k, dtype=np.int64)
        word[ipv6] = (be16(data, start[ipv6] + offset) << 16) | be16(data, start[ipv6] + offset + 2)
        prefix_at |= ipv6 & (word == TEREDO_PREFIX)
    found |= prefix_at
    # Indicators, read from the second byte as Zeek does (even after a version nibble 6).
    indicated = candidate & ~found & ((first == 0) | ((first >> 4) == 6)) & ((second == 0) | (second == 1))
    offset = np.zeros(k, dtype=np.int64)
    auth = indicated & (second == 1)
    if auth.any():
        length = np.zeros(k, dtype=np.int64)
        readable = auth & layer.has(4)
        length[readable] = 13 + u8(data, start[readable] + 2) + u8(data, start[readable] + 3)
        auth &= readable & layer.has(length + IPV6_HEADER_BYTES)
        offset[auth] = length[auth]
        indicated &= ~(second == 1) | auth
        # After the authentication header, an origin indication must follow (its first two bytes 0).
        after = np.zeros(k, dtype=np.int64)
        after[auth] = be16(data, start[auth] + offset[auth])
        indicated &= ~auth | (after == ORIGIN)
    origin = indicated & layer.has(offset + ORIGIN_BYTES + IPV6_HEADER_BYTES)
    nibble = np.zeros(k, dtype=np.int64)
    nibble[origin] = u8(data, start[origin] + offset[origin] + ORIGIN_BYTES) >> 4
    found |= origin & (nibble == 6)
    return found
