"""DNS messages (RFC 1035, 3596, 6891, 2782, 6844, 9460, 4034/4035/5155, 2845, 2930, 3403).

A pure function of message bytes: :func:`parse` takes one ``uint8`` buffer and
the start/end offsets of ``m`` DNS messages in it and returns record columns
(:class:`DnsParse`).  No files, sockets, printing or pandas.

The walk runs in ``numba`` over the whole batch and follows Zeek's DNS
analyzer (``src/analyzer/protocol/dns/DNS.cc``) step by step, because Zeek's
``dns.log`` is the reference: the same bounds checks, the same point where a
malformed message stops being parsed (what parsed before it is kept), the same
weird names, and the same cursor movement per RR type (some of Zeek's RR
parsers read past ``RDLENGTH`` or do not consume the RDATA; the next RR is read
from where Zeek would read it).  Every read is bounds-checked against the
message end; nothing raises on message contents.

Names are not copied: a name is referred to by the offset of its first label,
and the walk yields a 64-bit FNV-1a hash of the text Zeek would make of it
(labels joined by ``.``, lower-cased where Zeek lower-cases).  Text is built
later, once per distinct name or RDATA (:mod:`dissectors.dns_rdata`), from the
offsets recorded here.

Compression pointers must point strictly backwards (Zeek's rule; so no pointer
loop can exist), and a chain deeper than ``max_depth`` pointers stops the name
there with ``DNS_max_compression_chain_depth_exceeded``.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

# ---------------------------------------------------------------------------
# Output layout.

# hdr columns (one row per message).
H_STATUS, H_BASE, H_END, H_ID, H_FLAGS, H_QD, H_AN, H_NS, H_AR = range(9)
H_QR, H_OPCODE, H_RCODE, H_TOO_LARGE, H_REC0, H_REC1, H_NQ, H_LASTQ, H_OPT = range(9, 18)
H_DU, H_ECS_FAMILY, H_ECS_SRC, H_ECS_SCOPE, H_ECS_POS, H_ECS_LEN, H_COOKIE_POS, H_COOKIE_LEN = range(18, 26)
H_KEEPALIVE, H_FIRST_Q, H_NO_END, H_OPT_CLASS, H_OPT_TTL, H_COMPLETE, H_CONFIRM = range(26, 33)
NH = 33

# H_STATUS values.
ST_EMPTY, ST_SHORT, ST_OPCODE, ST_PARSED = 0, 1, 2, 3

# rec columns (one row per question or resource record parsed).
R_MSG, R_SECT, R_TYPE, R_CLASS, R_TTL, R_RDPOS, R_RDLEN, R_NPOS = range(8)
R_OKEY, R_QKEY, R_EVENT, R_KIND, R_KEY, R_A1, R_A2, R_A3 = range(8, 16)
NR = 16

# Sections (R_SECT).  Zeek's dns_answer$answer_type numbers 1..5 for the RR sections.
SECT_QUESTION, SECT_ANSWER, SECT_AUTH, SECT_ADDL, SECT_PREREQ, SECT_UPDATE, SECT_ZONE = 0, 1, 2, 3, 4, 5, 6

# Render kinds (R_KIND): how the text of a record's ``answers`` entry is made.
(K_NONE, K_EMPTY, K_A, K_AAAA, K_RDNAME, K_TXT, K_SPF, K_RRSIG, K_DNSKEY, K_NSEC, K_NSEC3,
 K_NSEC3PARAM, K_DS, K_BINDS, K_SSHFP, K_LOC, K_NAPTR, K_UNKNOWN, K_PRE, K_DEL,
 K_QLOWER, K_QORIG, K_OWNER) = range(23)

# weird columns.
W_MSG, W_CODE, W_A, W_B = range(4)
NW = 4

# Weird names (Zeek's) and the format of their ``addl``: None, "d" (%d), "gt" (%d > %d),
# "bits" (%d bits), "need" (need %d bits, have %d bits), "cap" (%d capped to %d).
WEIRDS = (
    ("DNS_truncated_len_lt_hdr_len", None),            # 0
    ("DNS_unknown_opcode", "d"),
    ("DNS_Conn_count_too_large", "gt"),
    ("DNS_DU_invalid_zone_count", "d"),
    ("DNS_DU_incorrect_zone_type", None),
    ("DNS_truncated_quest_too_short", None),           # 5
    ("DNS_truncated_ans_too_short", None),
    ("DNS_truncated_RR_rdlength_lt_len", None),
    ("DNS_dynamic_update_invalid_update", None),
    ("DNS_dynamic_update_prereq_nonzero_ttl", "d"),
    ("DNS_dynamic_update_invalid_prereq", None),       # 10
    ("DNS_zero_rdlength", None),
    ("DNS_RR_unknown_type", "d"),
    ("DNS_max_compression_chain_depth_exceeded", "d"),
    ("DNS_NAME_too_long", None),
    ("dns_invalid_name", None),                        # 15
    ("DNS_label_forward_compress_offset", None),
    ("DNS_label_len_gt_pkt", None),
    ("DNS_label_too_long", None),
    ("DNS_label_len_gt_name_len", None),
    ("DNS_RR_length_mismatch", None),                  # 20
    ("DNS_TXT_char_str_past_rdlen", None),
    ("EDNS_truncated_option", None),
    ("EDNS_ECS_invalid_option_len", None),
    ("EDNS_ECS_invalid_addr_v4_prefix", "bits"),
    ("EDNS_ECS_invalid_addr_v4", "need"),              # 25
    ("EDNS_ECS_invalid_addr_v6_prefix", "bits"),
    ("EDNS_ECS_invalid_addr_v6", "need"),
    ("EDNS_TCP_Keepalive_In_UDP", None),
    ("DNSSEC_RRSIG_NotRecommended_ZoneSignAlgo", "d"),
    ("DNSSEC_RRSIG_Indirect_ZoneSignAlgo", "d"),       # 30
    ("DNSSEC_RRSIG_PrivateDNS_ZoneSignAlgo", "d"),
    ("DNSSEC_RRSIG_PrivateOID_ZoneSignAlgo", "d"),
    ("DNSSEC_RRSIG_unknown_ZoneSignAlgo", "d"),
    ("DNSSEC_DNSKEY_Invalid_Flag", "d"),
    ("DNSSEC_DNSKEY_Revoked_KSK", "d"),                # 35
    ("DNSSEC_DNSKEY_Invalid_Protocol", "d"),
    ("DNSSEC_DNSKEY_NotRecommended_ZoneSignAlgo", "d"),
    ("DNSSEC_DNSKEY_Indirect_ZoneSignAlgo", "d"),
    ("DNSSEC_DNSKEY_PrivateDNS_ZoneSignAlgo", "d"),
    ("DNSSEC_DNSKEY_PrivateOID_ZoneSignAlgo", "d"),    # 40
    ("DNSSEC_DNSKEY_unknown_ZoneSignAlgo", "d"),
    ("DNSSEC_NSEC_bitmapLen0", "d"),
    ("DNSSEC_NSEC3_bitmapLen0", "d"),
    ("DNSSEC_DS_ReservedDigestType", "d"),
    ("DNSSEC_DS_unknown_DigestType", "d"),             # 45
    ("DNS_LOC_version_unrecognized", "d"),
    ("dns_invalid_loc_length", None),
    ("DNS_RR_bad_length", None),
    ("DNS_SVCB_wrong_length", None),
    ("DNS_SVCB_aliasmode_with_params", None),          # 50
    ("DNS_SVCB_param_value_toobig", "cap"),
    ("DNS_SVCB_mandatory_length_invalid", None),
    ("DNS_SVCB_alpn_length_invalid", None),
    ("DNS_SVCB_nodefaultalpn_value", None),
    ("DNS_SVCB_port_length_invalid", None),            # 55
    ("DNS_SVCB_hint_length_invalid", None),
    ("DNS_SVCB_key_reserved_or_invalid", None),
)
(WD_SHORT, WD_OPCODE, WD_TOO_LARGE, WD_DU_ZONES, WD_DU_ZONE_TYPE, WD_QUEST_SHORT, WD_ANS_SHORT,
 WD_RDLENGTH, WD_DU_UPDATE, WD_DU_PREREQ_TTL, WD_DU_PREREQ, WD_ZERO_RDLENGTH, WD_UNKNOWN_TYPE,
 WD_DEPTH, WD_NAME_LONG, WD_INVALID_NAME, WD_FORWARD, WD_LABEL_GT_PKT, WD_LABEL_LONG,
 WD_LABEL_GT_NAME, WD_LENGTH_MISMATCH, WD_TXT_PAST, WD_EDNS_TRUNC, WD_ECS_LEN, WD_ECS_V4_PFX,
 WD_ECS_V4, WD_ECS_V6_PFX, WD_ECS_V6, WD_KEEPALIVE_UDP, WD_RRSIG_ALGO, _r1, _r2, _r3, _r4,
 WD_DNSKEY_FLAG, WD_DNSKEY_REVOKED, WD_DNSKEY_PROTO, WD_DNSKEY_ALGO, _k1, _k2, _k3, _k4,
 WD_NSEC_BM0, WD_NSEC3_BM0, WD_DS_RESERVED, WD_DS_UNKNOWN, WD_LOC_VERSION, WD_LOC_LENGTH,
 WD_BAD_LENGTH, WD_SVCB_LENGTH, WD_SVCB_ALIAS, WD_SVCB_TOOBIG, WD_SVCB_MANDATORY, WD_SVCB_ALPN,
 WD_SVCB_NODEFAULT, WD_SVCB_PORT, WD_SVCB_HINT, WD_SVCB_KEY) = range(len(WEIRDS))

# RR types with a special parser in Zeek.
T_A, T_NS, T_CNAME, T_SOA, T_WKS, T_PTR, T_HINFO, T_MX, T_TXT = 1, 2, 5, 6, 11, 12, 13, 15, 16
T_AAAA, T_LOC, T_NBS, T_SRV, T_NAPTR, T_A6, T_OPT, T_DS, T_SSHFP = 28, 29, 32, 33, 35, 38, 41, 43, 44
T_RRSIG, T_NSEC, T_DNSKEY, T_NSEC3, T_NSEC3PARAM, T_SVCB, T_HTTPS, T_SPF = 46, 47, 48, 50, 51, 64, 65, 99
T_TKEY, T_TSIG, T_CAA, T_BINDS = 249, 250, 257, 65534

OP_QUERY, OP_NOTIFY, OP_UPDATE = 0, 4, 5
CLASS_NONE, CLASS_ANY = 254, 255

# Zeek's defaults (dns_max_queries, dns_max_compression_chain_depth).
MAX_QUERIES = 25
MAX_COMPRESSION_DEPTH = 20
NAME_BUFFER = 512   # Zeek's u_char name[513], less the terminator

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)


class DnsParse(NamedTuple):
    """Columns of a batch of parsed DNS messages.

    Attributes:
        hdr: ``int64[m, NH]``, one row per message (``H_*`` columns).
        rec: ``int64[k, NR]``, one row per question or RR walked (``R_*``
            columns), in message order; message ``i`` owns rows
            ``hdr[i, H_REC0]:hdr[i, H_REC1]``.
        weird: ``int64[w, NW]``, one row per anomaly (``W_*``; names in
            :data:`WEIRDS`), in the order Zeek raises them.
    """

    hdr: np.ndarray
    rec: np.ndarray
    weird: np.ndarray


# ---------------------------------------------------------------------------
# numba helpers.

@numba.njit(cache=True, inline="always")
def _fnv(h, b):
    return (h ^ np.uint64(b)) * FNV_PRIME


@numba.njit(cache=True, inline="always")
def _mix(kind, value):
    """A 64-bit text key from a render kind and a value (hash or small integer): splitmix64 finaliser."""
    z = np.uint64(value) ^ (np.uint64(kind) * np.uint64(0x9E3779B97F4A7C15))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.int64(z ^ (z >> np.uint64(31)))


@numba.njit(cache=True)
def _hash_bytes(h, data, start, stop):
    for i in range(start, stop):
        h = _fnv(h, data[i])
    return h


@numba.njit(cache=True, inline="always")
def _grow(array, need):
    if need <= array.shape[0]:
        return array
    size = max(need, array.shape[0] * 2)
    out = np.zeros((size, array.shape[1]), dtype=array.dtype)
    out[:array.shape[0]] = array
    return out


@numba.njit(cache=True, inline="always")
def _weird(weird, nw, msg, code, a, b):
    weird[nw, W_MSG] = msg
    weird[nw, W_CODE] = code
    weird[nw, W_A] = a
    weird[nw, W_B] = b
    return nw + 1


@numba.njit(cache=True)
def _name(data, base, end, pos, netbios, max_depth, downcase_top, weird, nw, msg, scratch):
    """Zeek's ExtractName at ``pos`` (message ``[base, end)``).

    Returns ``(ok, next_pos, hash_lower, hash_as_zeek, text_len, nw)``:
    ``hash_as_zeek`` hashes the text Zeek keeps (lower-cased where Zeek
    lower-cases: always when ``downcase_top``, else only the part reached
    through a pointer), ``hash_lower`` the fully lower-cased text.  ``ok``
    false means Zeek's ExtractName returned null (the caller stops).
    ``scratch`` is ``int64[max_depth + 2]``, the bytes written per level.
    """
    h_low = FNV_OFFSET
    h_orig = FNV_OFFSET
    first = True
    depth = 0
    cur = pos
    lim = end
    top_next = -1
    remaining = NAME_BUFFER
    text_len = 0
    scratch[0] = 0
    while True:
        if depth > max_depth:
            nw = _weird(weird, nw, msg, WD_DEPTH, depth, 0)
            break
        # ExtractLabel loop of this level.
        done = False
        while True:
            if lim - cur <= 0:
                nw = _weird(weird, nw, msg, WD_INVALID_NAME, 0, 0)
                return False, cur, h_low, h_orig, text_len, nw
            b = np.int64(data[cur])
            cur += 1
            if b == 0:
                done = True
                break
            if (b & 0xC0) == 0xC0:
                if lim - cur <= 0:
                    nw = _weird(weird, nw, msg, WD_INVALID_NAME, 0, 0)
                    return False, cur, h_low, h_orig, text_len, nw
                offset = ((b & 0x3F) << 8) | np.int64(data[cur])
                cur += 1
                ptr = cur - 2
                if offset >= ptr - base:
                    nw = _weird(weird, nw, msg, WD_FORWARD, 0, 0)
                    return False, cur, h_low, h_orig, text_len, nw
                if depth == 0:
                    top_next = cur
                lim = ptr
                cur = base + offset
                depth += 1
                scratch[depth] = 0
                break
            if b > lim - cur:
                nw = _weird(weird, nw, msg, WD_LABEL_GT_PKT, 0, 0)
                return False, lim, h_low, h_orig, text_len, nw
            if b > 63 and not netbios:
                nw = _weird(weird, nw, msg, WD_LABEL_LONG, 0, 0)
                return False, cur, h_low, h_orig, text_len, nw
            if b >= remaining:
                nw = _weird(weird, nw, msg, WD_LABEL_GT_NAME, 0, 0)
                return False, cur, h_low, h_orig, text_len, nw
            if not first:
                h_low = _fnv(h_low, 46)
                if not downcase_top:
                    h_orig = _fnv(h_orig, 46)
                text_len += 1
            first = False
            if depth == 0 and not downcase_top:
                for i in range(cur, cur + b):
                    c = np.int64(data[i])
                    h_low = _fnv(h_low, c + 32 if 65 <= c <= 90 else c)
                    h_orig = _fnv(h_orig, c)
            elif downcase_top:
                for i in range(cur, cur + b):
                    c = np.int64(data[i])
                    h_low = _fnv(h_low, c + 32 if 65 <= c <= 90 else c)
            else:
                for i in range(cur, cur + b):
                    c = np.int64(data[i])
                    low = c + 32 if 65 <= c <= 90 else c
                    h_low = _fnv(h_low, low)
                    h_orig = _fnv(h_orig, low)
            text_len += b
            remaining -= b + 1
            scratch[depth] += b + 1
            cur += b
        if done:
            break
    if top_next < 0:
        top_next = cur
    if downcase_top:
        h_orig = h_low
    # Unwind: each level's ExtractName checks its length (trailing dot included) and
    # drops that dot, innermost first.
    inner = 0
    level = depth if depth <= max_depth else depth - 1
    while level >= 0:
        n = scratch[level] + inner
        if n >= 255:
            nw = _weird(weird, nw, msg, WD_NAME_LONG, 0, 0)
        if n >= 2 and (inner == 0 and scratch[level] > 0):
            n -= 1
        inner = n
        level -= 1
    return True, top_next, h_low, h_orig, text_len, nw


@numba.njit(cache=True, inline="always")
def _short(data, pos, end):
    """Zeek's ExtractShort: ``(value, next_pos)``; 0 and no move when fewer than 2 bytes remain."""
    if end - pos < 2:
        return 0, pos
    return (np.int64(data[pos]) << 8) | np.int64(data[pos + 1]), pos + 2


@numba.njit(cache=True, inline="always")
def _long(data, pos, end):
    if end - pos < 4:
        return 0, pos
    v = (np.int64(data[pos]) << 24) | (np.int64(data[pos + 1]) << 16) | (np.int64(data[pos + 2]) << 8) \
        | np.int64(data[pos + 3])
    return v, pos + 4


@numba.njit(cache=True, inline="always")
def _stream(pos, end, length):
    """Zeek's ExtractStream: consume ``min(len, max(length, 0))`` bytes."""
    length = max(length, 0)
    take = min(end - pos, length)
    return pos + take


@numba.njit(cache=True, inline="always")
def _type_bitmaps(data, pos, end, remaining, weird, nw, msg, empty_code):
    """Skip an NSEC/NSEC3 type bit map field (RFC 4034 §4.1.2, RFC 5155 §3.2): ``(next_pos, nw)``.

    Windows of (block number, length, bit map) until ``remaining`` bytes of
    RDATA are used; a window of length 0 ends the walk with weird ``empty_code``
    (Zeek's ``DNSSEC_NSEC_bitmapLen0`` / ``DNSSEC_NSEC3_bitmapLen0``).
    """
    while remaining > 0 and end - pos > 0:
        block, pos = _short(data, pos, end)
        length = block & 0xFF
        if length == 0:
            nw = _weird(weird, nw, msg, empty_code, block >> 8, 0)
            break
        pos = _stream(pos, end, length)
        remaining -= 2 + length
    return pos, nw


@numba.njit(cache=True, inline="always")
def _char_string(data, pos, end, rdlen):
    """Zeek's extract_char_string: ``(ok, next_pos, rdlen, past)``; ``past`` when a string runs past RDLENGTH."""
    if rdlen <= 0:
        return False, pos, rdlen, False
    size = np.int64(data[pos])
    rdlen -= 1
    pos += 1
    if size > rdlen:
        return False, pos, rdlen, True
    return True, pos + size, rdlen - size, False


@numba.njit(cache=True)
def _algo_weird(algo, base_code):
    """Weird code for a DNSSEC algorithm number (RRSIG or DNSKEY family), or -1."""
    if algo == 1:
        return base_code
    if algo in (2, 3, 4, 5, 6, 7, 8, 10, 12, 13, 14, 15, 16):
        return -1
    if algo == 252:
        return base_code + 1
    if algo == 253:
        return base_code + 2
    if algo == 254:
        return base_code + 3
    return base_code + 4


@numba.njit(cache=True)
def _svc_params(data, pos, end, spl, weird, nw, msg):
    """Zeek's Parse_SvcParams: returns ``(pos, nw)``."""
    while spl >= 4:
        key, pos = _short(data, pos, end)
        vlen, pos = _short(data, pos, end)
        spl -= 4
        malformed = False
        if vlen > spl:
            nw = _weird(weird, nw, msg, WD_SVCB_TOOBIG, vlen, spl)
            vlen = spl
            malformed = True
        elif key == 0:      # mandatory
            if vlen == 0 or vlen % 2 != 0:
                nw = _weird(weird, nw, msg, WD_SVCB_MANDATORY, 0, 0)
                malformed = True
            else:
                parsed = 0
                while parsed + 2 <= vlen:
                    _, pos = _short(data, pos, end)
                    parsed += 2
        elif key == 1:      # alpn
            parsed = 0
            while parsed + 2 < vlen:
                alen = 0
                if end - pos >= 1:
                    alen = np.int64(data[pos])
                    pos += 1
                parsed += 1
                if alen == 0 or alen + parsed > vlen:
                    nw = _weird(weird, nw, msg, WD_SVCB_ALPN, 0, 0)
                    malformed = True
                    break
                pos = min(end, pos + alen)
                parsed += alen
        elif key == 2:      # no-default-alpn
            if vlen > 0:
                nw = _weird(weird, nw, msg, WD_SVCB_NODEFAULT, 0, 0)
                malformed = True
        elif key == 3:      # port
            if vlen != 2:
                nw = _weird(weird, nw, msg, WD_SVCB_PORT, 0, 0)
            else:
                _, pos = _short(data, pos, end)
        elif key == 4 or key == 6:   # ipv4hint / ipv6hint
            alen = 4 if key == 4 else 16
            if vlen % alen != 0:
                nw = _weird(weird, nw, msg, WD_SVCB_HINT, 0, 0)
                malformed = True
            else:
                pos = min(end, pos + vlen)
        elif key == 5:      # ech
            pos = _stream(pos, end, vlen)
        else:
            nw = _weird(weird, nw, msg, WD_SVCB_KEY, 0, 0)
            malformed = True
        if malformed:
            pos = _stream(pos, end, vlen)
        spl -= vlen
    return pos, nw


# ---------------------------------------------------------------------------
# The walk.

@numba.njit(cache=True)
def _parse(data, starts, ends, netbios, is_tcp, max_queries, max_depth, skip_auth, skip_addl, hdr, rec, weird):
    m = starts.shape[0]
    scratch = np.zeros(max_depth + 3, dtype=np.int64)
    nr = 0
    nw = 0
    for i in range(m):
        base = starts[i]
        end = ends[i]
        for c in range(NH):
            hdr[i, c] = 0
        hdr[i, H_BASE] = base
        hdr[i, H_END] = end
        hdr[i, H_LASTQ] = -1
        hdr[i, H_FIRST_Q] = -1
        hdr[i, H_OPT] = -1
        hdr[i, H_ECS_FAMILY] = -1
        hdr[i, H_COOKIE_POS] = -1
        hdr[i, H_KEEPALIVE] = -1
        hdr[i, H_REC0] = nr
        hdr[i, H_REC1] = nr
        weird = _grow(weird, nw + 8)
        if end - base < 12:
            hdr[i, H_STATUS] = ST_SHORT
            nw = _weird(weird, nw, i, WD_SHORT, 0, 0)
            continue
        flags = (np.int64(data[base + 2]) << 8) | np.int64(data[base + 3])
        opcode = (flags >> 11) & 0xF
        hdr[i, H_ID] = (np.int64(data[base]) << 8) | np.int64(data[base + 1])
        hdr[i, H_FLAGS] = flags
        hdr[i, H_QR] = (flags >> 15) & 1
        hdr[i, H_OPCODE] = opcode
        hdr[i, H_RCODE] = flags & 0xF
        qd = (np.int64(data[base + 4]) << 8) | np.int64(data[base + 5])
        an = (np.int64(data[base + 6]) << 8) | np.int64(data[base + 7])
        ns = (np.int64(data[base + 8]) << 8) | np.int64(data[base + 9])
        ar = (np.int64(data[base + 10]) << 8) | np.int64(data[base + 11])
        hdr[i, H_QD] = qd
        hdr[i, H_AN] = an
        hdr[i, H_NS] = ns
        hdr[i, H_AR] = ar
        nb = netbios[i]
        if opcode != OP_QUERY and opcode != OP_UPDATE and not nb and opcode != OP_NOTIFY:
            hdr[i, H_STATUS] = ST_OPCODE
            nw = _weird(weird, nw, i, WD_OPCODE, opcode, 0)
            continue
        hdr[i, H_STATUS] = ST_PARSED
        if max_queries > 0 and qd > max_queries:
            hdr[i, H_TOO_LARGE] = 1
            nw = _weird(weird, nw, i, WD_TOO_LARGE, qd, max_queries)
            continue
        du = opcode == OP_UPDATE and not nb
        hdr[i, H_DU] = 1 if du else 0
        pos = base + 12
        zclass = -1
        ok = True
        if du and qd != 1:
            nw = _weird(weird, nw, i, WD_DU_ZONES, qd, 0)
            continue
        skip_a = skip_auth
        skip_b = skip_addl
        if an > 0:
            skip_a = skip_a or ns == 0
            skip_b = skip_b or ar == 0
        # Zeek's phases: questions (or the update zone), answers (or prerequisites),
        # [updates], then, unless both are skipped, authority (not for updates) and additional.
        for phase in range(5):
            if not ok:
                break
            if phase == (3 if du else 2):
                hdr[i, H_CONFIRM] = 1      # Zeek's AnalyzerConfirmation: questions and answers parsed
            skip_event = False
            if phase == 0:
                count = qd
                sect = SECT_ZONE if du else SECT_QUESTION
            elif phase == 1:
                count = an
                sect = SECT_PREREQ if du else SECT_ANSWER
            elif phase == 2:
                if not du:
                    continue
                count = ns
                sect = SECT_UPDATE
            elif phase == 3:
                if du or (skip_a and skip_b):
                    continue
                count = ns
                sect = SECT_AUTH
                skip_event = skip_a
            else:
                if skip_b:
                    continue
                count = ar
                sect = SECT_ADDL
            for _k in range(count):
                rec = _grow(rec, nr + 1)
                weird = _grow(weird, nw + 3 * (max_depth + 8) + 16)
                r = nr
                nr += 1
                for c in range(NR):
                    rec[r, c] = 0
                rec[r, R_MSG] = i
                rec[r, R_SECT] = sect
                rec[r, R_NPOS] = pos
                # A question and a resource record (or the update zone: ParseAnswerHeader)
                # both start with a name, a type and a class.
                question = sect == SECT_QUESTION
                good, pos, hl, ho, tl, nw = _name(data, base, end, pos, nb, max_depth, not question, weird, nw,
                                                  i, scratch)
                if not good:
                    nr -= 1
                    ok = False
                    break
                if end - pos < 4:
                    nw = _weird(weird, nw, i, WD_QUEST_SHORT if question else WD_ANS_SHORT, 0, 0)
                    nr -= 1
                    ok = False
                    break
                rtype, pos = _short(data, pos, end)
                rclass, pos = _short(data, pos, end)
                rec[r, R_TYPE] = rtype
                rec[r, R_CLASS] = rclass
                if question:
                    rec[r, R_EVENT] = 1
                    rec[r, R_OKEY] = _mix(K_QLOWER, hl)
                    rec[r, R_QKEY] = _mix(K_QORIG, ho)
                    hdr[i, H_NQ] += 1
                    hdr[i, H_LASTQ] = r
                    if hdr[i, H_FIRST_Q] < 0:
                        hdr[i, H_FIRST_Q] = r
                    continue
                rec[r, R_OKEY] = _mix(K_OWNER, hl)
                owner_hash = hl
                if sect == SECT_ZONE:
                    if rtype != T_SOA:
                        nw = _weird(weird, nw, i, WD_DU_ZONE_TYPE, 0, 0)
                        hdr[i, H_NO_END] = 1   # Zeek returns here without EndMessage (no dns_end)
                        ok = False
                        break
                    zclass = rclass
                    continue
                ttl, pos = _long(data, pos, end)
                rdl, pos = _short(data, pos, end)
                rec[r, R_TTL] = ttl
                rec[r, R_RDPOS] = pos
                rec[r, R_RDLEN] = rdl
                if rdl > end - pos:
                    nw = _weird(weird, nw, i, WD_RDLENGTH, 0, 0)
                    ok = False
                    break
                if du and sect == SECT_UPDATE:
                    if rclass == CLASS_ANY and ttl == 0 and rdl == 0:
                        if not skip_event:
                            rec[r, R_EVENT] = 1
                            rec[r, R_KIND] = K_DEL
                            rec[r, R_KEY] = _mix(K_DEL, owner_hash ^ (np.int64(rtype) << 16) ^ rclass)
                        continue
                    elif not ((rclass == CLASS_NONE and ttl == 0) or rclass == zclass):
                        nw = _weird(weird, nw, i, WD_DU_UPDATE, 0, 0)
                        continue
                elif du and sect == SECT_PREREQ:
                    if ttl != 0:
                        nw = _weird(weird, nw, i, WD_DU_PREREQ_TTL, ttl, 0)
                    elif ((rclass == CLASS_ANY or rclass == CLASS_NONE) and rdl == 0) or rclass == zclass:
                        if not skip_event:
                            rec[r, R_EVENT] = 1
                            rec[r, R_KIND] = K_PRE
                            rec[r, R_KEY] = _mix(K_PRE, owner_hash ^ (np.int64(rtype) << 16) ^ rclass)
                    else:
                        nw = _weird(weird, nw, i, WD_DU_PREREQ, 0, 0)
                    continue
                if rdl == 0 and end - pos > 0:
                    if du:
                        continue
                    nw = _weird(weird, nw, i, WD_ZERO_RDLENGTH, 0, 0)
                    ok = False
                    break
                rd0 = pos
                good = True
                kind = K_NONE
                key = np.int64(0)
                t = rtype
                if t == T_A:
                    if rdl != 4:
                        nw = _weird(weird, nw, i, WD_BAD_LENGTH, 0, 0)
                        good = False
                    else:
                        addr, pos = _long(data, pos, end)
                        kind = K_A
                        key = _mix(K_A, addr)
                elif t == T_AAAA or t == T_A6:
                    h = FNV_OFFSET
                    words = 0
                    for _w in range(4):
                        if end - pos >= 4:
                            h = _hash_bytes(h, data, pos, pos + 4)
                            pos += 4
                            words += 1
                        else:
                            for _z in range(4):
                                h = _fnv(h, 0)
                    rec[r, R_A1] = words
                    kind = K_AAAA
                    key = _mix(K_AAAA, h)
                elif t == T_NS or t == T_CNAME or t == T_PTR:
                    good, pos, hl2, ho2, tl2, nw = _name(data, base, end, pos, nb, max_depth, True, weird, nw, i,
                                                         scratch)
                    if good:
                        if pos - rd0 != rdl:
                            nw = _weird(weird, nw, i, WD_LENGTH_MISMATCH, 0, 0)
                        kind = K_RDNAME
                        rec[r, R_A1] = rd0
                        key = _mix(K_RDNAME, hl2)
                elif t == T_SOA:
                    good, pos, hl2, ho2, tl2, nw = _name(data, base, end, pos, nb, max_depth, True, weird, nw, i,
                                                         scratch)
                    if good:
                        good, pos, _, _, _, nw = _name(data, base, end, pos, nb, max_depth, True, weird, nw,
                                                             i, scratch)
                        if good:
                            if end - pos < 20:
                                good = False
                            else:
                                pos += 20
                                if pos - rd0 != rdl:
                                    nw = _weird(weird, nw, i, WD_LENGTH_MISMATCH, 0, 0)
                                kind = K_RDNAME
                                rec[r, R_A1] = rd0
                                key = _mix(K_RDNAME, hl2)
                elif t == T_WKS:
                    if skip_event:
                        pos += rdl
                    else:
                        kind = K_EMPTY   # the event is raised and the RDATA is not consumed
                        key = _mix(K_EMPTY, 0)
                elif t == T_HINFO or t == T_CAA or t == T_NBS or t == T_TKEY:
                    pos += rdl           # no handler in Zeek's base scripts: skipped
                elif t == T_MX:
                    _, pos = _short(data, pos, end)
                    npos = pos
                    good, pos, hl2, ho2, tl2, nw = _name(data, base, end, pos, nb, max_depth, True, weird, nw, i,
                                                         scratch)
                    if good:
                        if pos - rd0 != rdl:
                            nw = _weird(weird, nw, i, WD_LENGTH_MISMATCH, 0, 0)
                        kind = K_RDNAME
                        rec[r, R_A1] = npos
                        key = _mix(K_RDNAME, hl2)
                elif t == T_TXT or t == T_SPF:
                    if skip_event:
                        pos += rdl
                    else:
                        left = rdl
                        past = False
                        while True:
                            got, pos, left, past = _char_string(data, pos, end, left)
                            if not got:
                                break
                        if past:
                            nw = _weird(weird, nw, i, WD_TXT_PAST, 0, 0)
                        good = left == 0
                        kind = K_TXT if t == T_TXT else K_SPF
                        h = _hash_bytes(FNV_OFFSET, data, rd0, pos)
                        key = _mix(kind, h ^ (np.int64(rdl) << 40))
                elif t == T_SRV:
                    if not nb:
                        _, pos = _short(data, pos, end)
                        _, pos = _short(data, pos, end)
                        _, pos = _short(data, pos, end)
                        npos = pos
                        good, pos, hl2, ho2, tl2, nw = _name(data, base, end, pos, nb, max_depth, True, weird, nw,
                                                             i, scratch)
                        if good:
                            if pos - rd0 != rdl:
                                nw = _weird(weird, nw, i, WD_LENGTH_MISMATCH, 0, 0)
                            kind = K_RDNAME
                            rec[r, R_A1] = npos
                            key = _mix(K_RDNAME, hl2)
                elif t == T_NAPTR:
                    _, pos = _short(data, pos, end)
                    _, pos = _short(data, pos, end)
                    left = rdl - 4
                    if end - pos <= 0 or left <= 0:
                        good = False
                    else:
                        strings_ok = True
                        for _s in range(3):
                            got, pos, left, past = _char_string(data, pos, end, left)
                            if past:
                                nw = _weird(weird, nw, i, WD_TXT_PAST, 0, 0)
                            if not got:
                                strings_ok = False
                        npos = pos
                        got, pos, hl2, ho2, tl2, nw = _name(data, base, end, pos, nb, max_depth, False, weird, nw, i,
                                                            scratch)
                        if not strings_ok or not got:
                            good = False
                        else:
                            kind = K_NAPTR
                            rec[r, R_A1] = npos
                            h = _hash_bytes(FNV_OFFSET, data, rd0, npos)
                            key = _mix(K_NAPTR, h ^ ho2)
                elif t == T_OPT:
                    if hdr[i, H_OPT] < 0:
                        hdr[i, H_OPT] = r
                        hdr[i, H_OPT_CLASS] = rclass
                        hdr[i, H_OPT_TTL] = ttl
                    left = rdl
                    while left >= 4:
                        weird = _grow(weird, nw + 4)
                        code, pos = _short(data, pos, end)
                        olen, pos = _short(data, pos, end)
                        left -= 4
                        if olen > left:
                            nw = _weird(weird, nw, i, WD_EDNS_TRUNC, 0, 0)
                            good = False
                            break
                        if code == 8:        # client subnet (RFC 7871)
                            if olen <= 4:
                                nw = _weird(weird, nw, i, WD_ECS_LEN, 0, 0)
                            else:
                                family = (np.int64(data[pos]) << 8) | np.int64(data[pos + 1])
                                src = np.int64(data[pos + 2])
                                scope = np.int64(data[pos + 3])
                                have = (olen - 4) * 8
                                if family == 1 or family == 2:
                                    limit = 32 if family == 1 else 128
                                    if src > limit:
                                        nw = _weird(weird, nw, i, WD_ECS_V4_PFX if family == 1 else WD_ECS_V6_PFX,
                                                    src, 0)
                                    elif src > have:
                                        nw = _weird(weird, nw, i, WD_ECS_V4 if family == 1 else WD_ECS_V6, src,
                                                    have)
                                    elif hdr[i, H_ECS_FAMILY] < 0:
                                        hdr[i, H_ECS_FAMILY] = family
                                        hdr[i, H_ECS_SRC] = src
                                        hdr[i, H_ECS_SCOPE] = scope
                                        hdr[i, H_ECS_POS] = pos + 4
                                        hdr[i, H_ECS_LEN] = (src + 7) // 8
                        elif code == 11:     # TCP keepalive (RFC 7828)
                            if olen == 0 or olen == 2:
                                if not is_tcp[i]:
                                    nw = _weird(weird, nw, i, WD_KEEPALIVE_UDP, 0, 0)
                                value = 0
                                if olen == 2:
                                    value = (np.int64(data[pos]) << 8) | np.int64(data[pos + 1])
                                hdr[i, H_KEEPALIVE] = value if olen == 2 else 65536
                        elif code == 10:     # cookie (RFC 7873)
                            if (olen == 8 or 16 <= olen <= 40) and hdr[i, H_COOKIE_POS] < 0:
                                hdr[i, H_COOKIE_POS] = pos
                                hdr[i, H_COOKIE_LEN] = olen
                        pos += olen
                        left -= olen
                    if good and left != 0:
                        nw = _weird(weird, nw, i, WD_EDNS_TRUNC, 0, 0)
                        good = False
                elif t == T_TSIG:
                    good, pos, hl2, ho2, tl2, nw = _name(data, base, end, pos, nb, max_depth, True, weird, nw, i,
                                                         scratch)
                    if good:
                        _, pos = _long(data, pos, end)
                        _, pos = _short(data, pos, end)
                        _, pos = _short(data, pos, end)
                        dlen, pos = _short(data, pos, end)
                        pos += min(end - pos, dlen)
                        _, pos = _short(data, pos, end)
                        _, pos = _short(data, pos, end)
                        dlen, pos = _short(data, pos, end)
                        pos += min(end - pos, dlen)
                elif t == T_RRSIG:
                    if skip_event:
                        pos += rdl
                    elif end - pos < 18:
                        good = False
                    else:
                        covered = (np.int64(data[pos]) << 8) | np.int64(data[pos + 1])
                        algo = np.int64(data[pos + 2])
                        pos += 18
                        npos = pos
                        good, pos, hl2, ho2, tl2, nw = _name(data, base, end, pos, nb, max_depth, True, weird, nw,
                                                             i, scratch)
                        if good:
                            pos = _stream(pos, end, rdl - ((pos - npos) + 18))
                            code = _algo_weird(algo, WD_RRSIG_ALGO)
                            if code >= 0:
                                nw = _weird(weird, nw, i, code, algo, 0)
                            kind = K_RRSIG
                            rec[r, R_A1] = covered
                            rec[r, R_A2] = npos
                            key = _mix(K_RRSIG, hl2 ^ (covered << 48))
                elif t == T_DNSKEY:
                    if skip_event:
                        pos += rdl
                    elif end - pos < 4:
                        good = False
                    else:
                        dflags = (np.int64(data[pos]) << 8) | np.int64(data[pos + 1])
                        proto = np.int64(data[pos + 2])
                        algo = np.int64(data[pos + 3])
                        pos += 4
                        pos = _stream(pos, end, rdl - 4)
                        if (dflags & 0xFE7E) != 0:
                            nw = _weird(weird, nw, i, WD_DNSKEY_FLAG, dflags, 0)
                        if (dflags & 0x0181) == 0x0181:
                            nw = _weird(weird, nw, i, WD_DNSKEY_REVOKED, dflags, 0)
                        if proto != 3:
                            nw = _weird(weird, nw, i, WD_DNSKEY_PROTO, proto, 0)
                        code = _algo_weird(algo, WD_DNSKEY_ALGO)
                        if code >= 0:
                            nw = _weird(weird, nw, i, code, algo, 0)
                        kind = K_DNSKEY
                        rec[r, R_A1] = algo
                        key = _mix(K_DNSKEY, algo)
                elif t == T_NSEC:
                    if skip_event:
                        pos += rdl
                    else:
                        good, pos, hl2, ho2, tl2, nw = _name(data, base, end, pos, nb, max_depth, True, weird, nw,
                                                             i, scratch)
                        if good:
                            pos, nw = _type_bitmaps(data, pos, end, rdl - (pos - rd0), weird, nw, i, WD_NSEC_BM0)
                            kind = K_NSEC
                            rec[r, R_A1] = rd0
                            key = _mix(K_NSEC, hl2 ^ (owner_hash * np.int64(31)))
                elif t == T_NSEC3:
                    if skip_event:
                        pos += rdl
                    elif end - pos < 6:
                        good = False
                    else:
                        pos += 4
                        salt = 0
                        if end - pos > 0:
                            salt = np.int64(data[pos])
                            pos += 1
                        pos = _stream(pos, end, salt)
                        hlen = 0
                        if end - pos > 0:
                            hlen = np.int64(data[pos])
                            pos += 1
                        pos = _stream(pos, end, hlen)
                        pos, nw = _type_bitmaps(data, pos, end, rdl - (pos - rd0), weird, nw, i, WD_NSEC3_BM0)
                        kind = K_NSEC3
                        key = _mix(K_NSEC3, 0)
                elif t == T_NSEC3PARAM:
                    if skip_event:
                        pos += rdl
                    elif end - pos < 5:
                        good = False
                    else:
                        pos += 4
                        salt = np.int64(data[pos])
                        pos += 1
                        pos = _stream(pos, end, salt)
                        kind = K_NSEC3PARAM
                        key = _mix(K_NSEC3PARAM, 0)
                elif t == T_DS:
                    if skip_event:
                        pos += rdl
                    elif end - pos < 4:
                        good = False
                    else:
                        algo = np.int64(data[pos + 2])
                        dtype = np.int64(data[pos + 3])
                        pos += 4
                        pos = _stream(pos, end, rdl - 4)
                        if dtype == 0:
                            nw = _weird(weird, nw, i, WD_DS_RESERVED, dtype, 0)
                        elif dtype > 4:
                            nw = _weird(weird, nw, i, WD_DS_UNKNOWN, dtype, 0)
                        kind = K_DS
                        rec[r, R_A1] = algo
                        rec[r, R_A2] = dtype
                        key = _mix(K_DS, (algo << 8) | dtype)
                elif t == T_BINDS:
                    if skip_event:
                        pos += rdl
                    elif end - pos < 5:
                        good = False
                    else:
                        pos += 5
                        kind = K_BINDS
                        key = _mix(K_BINDS, 0)
                elif t == T_SSHFP:
                    if skip_event:
                        pos += rdl
                    elif end - pos < 2:
                        good = False
                    else:
                        pos += 2
                        fp = pos
                        pos = _stream(pos, end, rdl - 2)
                        kind = K_SSHFP
                        rec[r, R_A1] = fp
                        rec[r, R_A2] = pos - fp
                        key = _mix(K_SSHFP, _hash_bytes(FNV_OFFSET, data, fp, pos))
                elif t == T_LOC:
                    if rdl != 16:
                        nw = _weird(weird, nw, i, WD_LOC_LENGTH, 0, 0)
                        good = False
                    elif skip_event:
                        pos += rdl
                    else:
                        version = np.int64(data[pos])
                        size = np.int64(data[pos + 1])
                        hp = np.int64(data[pos + 2])
                        vp = np.int64(data[pos + 3])
                        pos += 16
                        if version != 0:
                            nw = _weird(weird, nw, i, WD_LOC_VERSION, version, 0)
                        kind = K_LOC
                        rec[r, R_A1] = size
                        rec[r, R_A2] = hp
                        rec[r, R_A3] = vp
                        key = _mix(K_LOC, (size << 16) | (hp << 8) | vp)
                elif t == T_SVCB or t == T_HTTPS:
                    if rdl < 3:
                        nw = _weird(weird, nw, i, WD_SVCB_LENGTH, 0, 0)
                        good = False
                    else:
                        prio, pos = _short(data, pos, end)
                        good, pos, _, _, _, nw = _name(data, base, end, pos, nb, max_depth, False, weird, nw,
                                                       i, scratch)
                        if good:
                            spl = rdl - (pos - rd0)
                            if spl > 0:
                                if prio == 0:
                                    nw = _weird(weird, nw, i, WD_SVCB_ALIAS, 0, 0)
                                weird = _grow(weird, nw + spl + 8)
                                pos, nw = _svc_params(data, pos, end, spl, weird, nw, i)
                else:
                    nw = _weird(weird, nw, i, WD_UNKNOWN_TYPE, t, 0)
                    pos += rdl
                    kind = K_UNKNOWN
                    rec[r, R_A1] = t
                    key = _mix(K_UNKNOWN, t)
                if kind != K_NONE and not skip_event:
                    rec[r, R_EVENT] = 1
                    rec[r, R_KIND] = kind
                    if du and sect == SECT_UPDATE:
                        # Zeek's script prefixes "add: " and names the owner of A/AAAA/A6.
                        key = _mix(kind + 64, key ^ owner_hash)
                    rec[r, R_KEY] = key
                if not good:
                    ok = False
                    break
        hdr[i, H_REC1] = nr
        hdr[i, H_COMPLETE] = 1 if ok else 0
        if ok:
            hdr[i, H_CONFIRM] = 1
    return rec, weird, nr, nw


class Workspace:
    """Buffers reused across :func:`parse` calls (fresh large arrays cost page faults every batch)."""

    def __init__(self):
        self.hdr = np.zeros((0, NH), dtype=np.int64)
        self.rec = np.zeros((1024, NR), dtype=np.int64)
        self.weird = np.zeros((256, NW), dtype=np.int64)


def parse(data: np.ndarray, starts: np.ndarray, ends: np.ndarray, netbios: np.ndarray | None = None,
          is_tcp: np.ndarray | None = None, max_queries: int = MAX_QUERIES,
          max_depth: int = MAX_COMPRESSION_DEPTH, skip_auth: bool = False, skip_addl: bool = False,
          workspace: Workspace | None = None) -> DnsParse:
    """Walk ``m`` DNS messages ``data[starts[i]:ends[i]]`` as Zeek's DNS analyzer does.

    Args:
        data: ``uint8`` buffer holding the messages (e.g. ``batch.data``).
        starts, ends: ``int64[m]`` offsets of each message's first byte and one past its last.
        netbios: ``bool[m]``, message on a NetBIOS name service connection (UDP port 137):
            labels longer than 63 bytes allowed, type 33 is NBSTAT (not parsed), opcodes
            other than query/notify/update accepted.  Default all false.
        is_tcp: ``bool[m]``, message carried over TCP (for ``EDNS_TCP_Keepalive_In_UDP``).
        max_queries: Zeek's ``dns_max_queries`` (0 disables the check).
        max_depth: Zeek's ``dns_max_compression_chain_depth``.
        skip_auth, skip_addl: Zeek's ``dns_skip_all_auth``/``dns_skip_all_addl``
            (Zeek's defaults are true; the auth/addl add-on sets both false, our default).

        workspace: buffers to reuse; the result then holds views into them, valid
            until the next call with the same workspace.

    Returns:
        :class:`DnsParse`.  Never raises on message contents.
    """
    m = len(starts)
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    ends = np.ascontiguousarray(ends, dtype=np.int64)
    netbios = np.zeros(m, dtype=np.bool_) if netbios is None else np.ascontiguousarray(netbios, dtype=np.bool_)
    is_tcp = np.zeros(m, dtype=np.bool_) if is_tcp is None else np.ascontiguousarray(is_tcp, dtype=np.bool_)
    data = np.ascontiguousarray(data, dtype=np.uint8)
    if len(data) == 0:
        data = np.zeros(1, dtype=np.uint8)
    ws = workspace or Workspace()
    if ws.hdr.shape[0] < m:
        ws.hdr = np.zeros((max(m, 2 * ws.hdr.shape[0]), NH), dtype=np.int64)
    if ws.rec.shape[0] < 6 * m:          # typical messages hold a few RRs: grow once, not by doubling
        ws.rec = np.zeros((8 * m, NR), dtype=np.int64)
    rec, weird, nr, nw = _parse(data, starts, ends, netbios, is_tcp, int(max_queries), int(max_depth),
                                bool(skip_auth), bool(skip_addl), ws.hdr, ws.rec, ws.weird)
    ws.rec, ws.weird = rec, weird
    if workspace is None:
        return DnsParse(ws.hdr[:m].copy(), rec[:nr].copy(), weird[:nw].copy())
    return DnsParse(ws.hdr[:m], rec[:nr], weird[:nw])


def weird_addl(code: int, a: int, b: int) -> str | None:
    """The ``addl`` text of weird ``code`` with values ``a``, ``b``, as Zeek formats it."""
    form = WEIRDS[code][1]
    if form is None:
        return None
    if form == "d":
        return str(a)
    if form == "gt":
        return f"{a} > {b}"
    if form == "bits":
        return f"{a} bits"
    if form == "need":
        return f"need {a} bits, have {b} bits"
    return f"{a} capped to {b}"
