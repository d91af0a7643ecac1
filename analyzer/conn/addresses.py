"""Addresses of the conn frame: membership in local networks, and their text, for all rows at once.

Addresses are held as two ``int64`` halves of a 128-bit value, IPv4 as
IPv4-mapped IPv6 (RFC 4291 §2.5.5.2: ``::ffff:a.b.c.d``).
"""

from __future__ import annotations

import ipaddress
import socket

import numpy as np
import pandas as pd
from numba import njit

from ..frames import strings_from_rows


def networks(nets) -> list[tuple]:
    """``(value high, value low, mask high, mask low)`` (``uint64``) per network text (``"10.0.0.0/8"``, ``"fe80::/10"``)."""
    out = []
    for text in nets:
        net = ipaddress.ip_network(text)
        if net.version == 4:
            value = (0xFFFF << 32) | int(net.network_address)
            bits = 96 + net.prefixlen
        else:
            value, bits = int(net.network_address), net.prefixlen
        mask = ((1 << 128) - 1) ^ ((1 << (128 - bits)) - 1)
        out.append((np.uint64(value >> 64), np.uint64(value & (2**64 - 1)),
                    np.uint64(mask >> 64), np.uint64(mask & (2**64 - 1))))
    return out


def in_networks(hi: np.ndarray, lo: np.ndarray, nets) -> np.ndarray:
    """``bool[m]``: whether each address (``int64[m]`` halves) lies in one of ``nets`` (from :func:`networks`)."""
    table = np.array(nets, dtype=np.uint64).reshape(-1, 4)
    return _in_nets_kernel(hi.view(np.uint64), lo.view(np.uint64), table)


@njit(cache=True, nogil=True)
def _in_nets_kernel(hi, lo, nets):
    # One pass over the rows, each stopping at its first matching network (numpy needed
    # several passes over every row per network).
    hit = np.zeros(hi.shape[0], dtype=np.bool_)
    for i in range(hi.shape[0]):
        for j in range(nets.shape[0]):
            if (hi[i] & nets[j, 2]) == nets[j, 0] and (lo[i] & nets[j, 3]) == nets[j, 1]:
                hit[i] = True
                break
    return hit


@njit(cache=True, nogil=True)
def _dotted_quads(values):
    """Dotted-quad text of IPv4 addresses (``uint64[u]``, low 32 bits): ``(uint8[u, 15] ASCII, int64[u] lengths)``."""
    u = values.shape[0]
    chars = np.zeros((u, 15), dtype=np.uint8)
    lengths = np.zeros(u, dtype=np.int64)
    for i in range(u):
        v = np.int64(values[i])
        n = 0
        for shift in (24, 16, 8, 0):
            octet = (v >> shift) & 0xFF
            if shift != 24:
                chars[i, n] = 46   # "."
                n += 1
            if octet >= 100:
                chars[i, n] = 48 + octet // 100
                n += 1
            if octet >= 10:
                chars[i, n] = 48 + (octet // 10) % 10
                n += 1
            chars[i, n] = 48 + octet % 10
            n += 1
        lengths[i] = n
    return chars, lengths


def format_addresses(hi: np.ndarray, lo: np.ndarray) -> pd.Categorical:
    """Categorical of address text (IPv4-mapped values as dotted quads), each distinct value formatted once.

    ``hi``/``lo``: ``int64[m]`` halves of the IPv6 (or IPv4-mapped) address.  The
    categories are the IPv4 addresses in numeric order, then the IPv6 ones
    (``inet_ntop``, RFC 5952 text), so a frame's categories do not depend on
    the order of its rows.
    """
    m = len(hi)
    v4 = (hi == 0) & ((lo >> 32) == 0xFFFF)
    codes = np.empty(m, dtype=np.int64)
    chars = np.zeros((0, 39), dtype=np.uint8)
    lengths = np.zeros(0, dtype=np.int64)
    if v4.any():
        values, inverse = np.unique(lo[v4] & 0xFFFFFFFF, return_inverse=True)
        quads, lengths = _dotted_quads(values.astype(np.uint64))
        chars = np.zeros((len(values), 39), dtype=np.uint8)
        chars[:, :15] = quads
        codes[v4] = inverse
    six = ~v4
    if six.any():
        words = np.stack([hi[six], lo[six]], axis=1).astype(">i8")
        raw = np.ascontiguousarray(words).view("V16").reshape(-1)
        values, inverse = np.unique(raw, return_inverse=True)
        codes[six] = inverse + len(lengths)
        # Few distinct IPv6 addresses: the socket module formats them.
        texts = np.array([socket.inet_ntop(socket.AF_INET6, bytes(v)).encode() for v in values], dtype="S39")
        chars = np.concatenate([chars, texts.view(np.uint8).reshape(len(values), 39)])
        lengths = np.concatenate([lengths, np.char.str_len(texts).astype(np.int64)])
    categories = pd.Index(strings_from_rows(chars, lengths), dtype="str")
    return pd.Categorical.from_codes(codes, categories=categories)
