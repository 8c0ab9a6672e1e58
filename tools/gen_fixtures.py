#!/usr/bin/python3
"""Generates the tensor-file fixtures in tests/fixtures/ and checks files
written by sparq against the formats' specifications.

Uses the standard library and numpy only (Debian's /usr/bin/python3 has
numpy). The outputs are committed; the C tests read them and never need
Python.

Regenerate (deterministic: running it twice gives identical bytes):

    /usr/bin/python3 tools/gen_fixtures.py

writes
    tests/fixtures/io/        valid safetensors (written by the independent
                              Python writer below), npy (numpy.save /
                              np.lib.format.write_array), IDX plain and .gz
    tests/fixtures/io/expected.json
                              per valid file: format, tensors (name, sparq
                              dtype, shape, flattened values; NaN and
                              infinities as the strings "nan", "inf",
                              "-inf"), metadata
    tests/fixtures/bad/       malformed files, one defect each
    tests/fixtures/bad_expected.json
                              per bad file: the reader that must reject it,
                              the sparq status name and a message fragment

Check sparq's writers (once, after regenerating or changing a writer):

    cmake --build build && (cd build && ctest -R test_io)
    /usr/bin/python3 tools/gen_fixtures.py --check-sparq build/tests/tmp/sparq_written

test_io_safetensors and test_io_npy read every valid fixture and write it
back with sparq into BUILD/tests/tmp/sparq_written/ under the same file
name. --check-sparq parses those files with the Python readers below
(safetensors: header length, '{', UTF-8 JSON, space padding to 8 bytes,
offsets tiling the data region; npy: numpy.load) and compares dtype, shape,
values bit for bit and metadata with the fixture it came from; sparq's npy
files must also be byte-identical to what numpy.save writes for the same
array.
"""

import gzip
import io
import json
import math
import os
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
GOOD = os.path.join(FIX, "io")
BAD = os.path.join(FIX, "bad")

# safetensors dtype -> (numpy dtype or None for hand-coded bytes, element size)
ST_DTYPES = {
    "F64": ("<f8", 8), "F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": (None, 2),
    "F8_E4M3": (None, 1), "F8_E5M2": (None, 1), "I64": ("<i8", 8), "I32": ("<i4", 4),
    "I8": ("i1", 1), "U8": ("u1", 1), "BOOL": ("?", 1),
}

# ------------------------------------------------------------ number codecs


def bf16_bits(values):
    """float32 -> bfloat16 bit patterns, round to nearest even (NaN kept quiet)."""
    b = np.asarray(values, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    nan = np.isnan(np.asarray(values, dtype="<f4"))
    rounded[nan] = (b[nan] >> 16) | 0x40
    return rounded.astype("<u2")


def bf16_value(bits):
    return float(np.array([int(bits) << 16], dtype="<u4").view("<f4")[0])


def e4m3_value(c):
    s = -1.0 if c & 0x80 else 1.0
    e, m = (c >> 3) & 0xF, c & 7
    if e == 15 and m == 7:
        return math.nan
    if e == 0:
        return s * (m / 8.0) * 2.0 ** -6
    return s * (1 + m / 8.0) * 2.0 ** (e - 7)


def e5m2_value(c):
    s = -1.0 if c & 0x80 else 1.0
    e, m = (c >> 2) & 0x1F, c & 3
    if e == 31:
        return s * math.inf if m == 0 else math.nan
    if e == 0:
        return s * (m / 4.0) * 2.0 ** -14
    return s * (1 + m / 4.0) * 2.0 ** (e - 15)


def json_value(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def decode(dtype, raw):
    """Raw little-endian bytes of a safetensors dtype -> list of Python floats."""
    npd, _ = ST_DTYPES[dtype]
    if dtype == "BF16":
        return [bf16_value(b) for b in np.frombuffer(raw, "<u2")]
    if dtype == "F8_E4M3":
        return [e4m3_value(b) for b in raw]
    if dtype == "F8_E5M2":
        return [e5m2_value(b) for b in raw]
    return [float(v) for v in np.frombuffer(raw, npd)]


# --------------------------------------------------- safetensors (the spec)


def st_bytes(tensors, metadata=None, pad=True):
    """An independent safetensors writer: tensors is a list of
    (name, dtype, shape, raw bytes), laid out in that order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(t[3] for t in tensors)


def st_read(data):
    """A strict Python safetensors reader, used on files sparq wrote.
    Returns (tensors in header order as (name, dtype, shape, raw), metadata,
    header bytes)."""
    assert len(data) >= 8, "shorter than the length field"
    (n,) = struct.unpack("<Q", data[:8])
    assert n <= len(data) - 8, "header length past the end"
    h = data[8:8 + n]
    assert h[:1] == b"{", "header does not start with '{'"
    text = h.decode("utf-8")
    pairs = json.JSONDecoder(object_pairs_hook=lambda p: p).decode(text.rstrip(" "))
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), "duplicate keys"
    meta = None
    tensors = []
    ranges = []
    for k, v in pairs:
        v = dict(v) if isinstance(v, list) else v
        if k == "__metadata__":
            meta = v
            assert all(isinstance(x, str) for x in v.values()), "metadata values must be strings"
            continue
        assert set(v) == {"dtype", "shape", "data_offsets"}, "fields of %s" % k
        b, e = v["data_offsets"]
        size = ST_DTYPES[v["dtype"]][1] * int(np.prod(v["shape"], dtype=np.int64))
        assert e - b == size, "offsets of %s do not match the shape" % k
        ranges.append((b, e, k))
        tensors.append((k, v["dtype"], tuple(v["shape"]), data[8 + n + b:8 + n + e]))
    at = 0
    for b, e, k in sorted(ranges):
        assert b == at, "offsets of %s leave a hole or overlap" % k
        at = e
    assert at == len(data) - 8 - n, "data region not covered exactly"
    return tensors, meta, h


# ------------------------------------------------------------ valid fixtures

expected = {}


def record(name, fmt, tensors, metadata=None):
    expected[name] = {
        "format": fmt,
        "tensors": [{"name": t[0], "dtype": t[1], "shape": list(t[2]), "values": [json_value(v) for v in t[3]]}
                    for t in tensors],
        "metadata": metadata or {},
    }


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def st_tensor(name, dtype, shape, values=None, raw=None):
    if raw is None:
        raw = np.asarray(values, dtype=ST_DTYPES[dtype][0]).reshape(shape).tobytes()
    return (name, dtype, tuple(shape), raw)


def gen_safetensors():
    f32 = np.array([[1.5, -2.25, 0.0], [3.0e-38, 1.0e38, -0.0]], "<f4")
    specials = np.array([1.0, math.nan, math.inf, -math.inf], "<f4")
    bf = bf16_bits([1.0, -2.5, 3.140625, 1.0e-3, 65504.0, -0.0])
    files = {
        "st_basic.safetensors": (
            [st_tensor("weight", "F32", (2, 3), f32), st_tensor("bias", "F64", (4,), [0.1, -1e300, 2.0 ** -1074, 7.0]),
             st_tensor("index", "I64", (3,), [-(2 ** 62), 0, 2 ** 53]), st_tensor("mask", "BOOL", (5,), [1, 0, 0, 1, 1]),
             st_tensor("special", "F32", (4,), specials)],
            {"format": "pt", "note": "ünïcødé ✓", "empty": ""}),
        "st_halfs.safetensors": (
            [st_tensor("h", "F16", (2, 3), np.array([1.0, -0.5, 65504.0, 6.1e-5, 5.96e-8, math.inf], "<f2")),
             st_tensor("bf", "BF16", (3, 2), raw=bf.tobytes()),
             st_tensor("e4m3", "F8_E4M3", (8,), raw=bytes([0x00, 0x38, 0xB8, 0x7E, 0x01, 0x08, 0x7F, 0xFE])),
             st_tensor("e5m2", "F8_E5M2", (2, 4), raw=bytes([0x00, 0x3C, 0xBC, 0x7B, 0x01, 0x7C, 0xFC, 0x7F]))],
            None),
        "st_edge.safetensors": (
            [st_tensor("scalar", "F32", (), [42.5]), st_tensor("empty", "F32", (0, 3), []),
             st_tensor("u8", "U8", (3,), [0, 128, 255]), st_tensor("zero_dim_i32", "I32", (2, 0), []),
             st_tensor("i8", "I8", (2,), [-128, 127]), st_tensor("i32", "I32", (1, 1, 1, 1, 1, 1, 1, 2), [-7, 2 ** 31 - 1])],
            {"a": "1"}),
        "st_no_tensors.safetensors": ([], None),
        "st_unaligned.safetensors": (
            [st_tensor("odd", "U8", (3,), [1, 2, 3]), st_tensor("f64", "F64", (2,), [1.25, -3.5]),
             st_tensor("f32", "F32", (3,), [0.5, 0.25, 0.125])], {"why": "views are only byte-aligned!"}),
    }
    for fname, (tensors, meta) in files.items():
        pad = fname != "st_unaligned.safetensors"
        data = st_bytes(tensors, meta, pad=pad)
        if not pad:  # the F64 and F32 data must really land on misaligned addresses
            assert (struct.unpack("<Q", data[:8])[0] + 3) % 4 != 0
        write(os.path.join(GOOD, fname), data)
        record(fname, "safetensors", [(n, d, s, decode(d, raw)) for n, d, s, raw in tensors], meta)


NPY_SPARQ = {"<f2": "F16", "<f4": "F32", "<f8": "F64", "|i1": "I8", "|u1": "U8", "<i4": "I32", "<i8": "I64",
             "|b1": "BOOL"}


def npy_record(fname, arr):
    a = np.asarray(arr)
    record(fname, "npy", [("data", NPY_SPARQ[a.dtype.str], a.shape, [float(v) for v in a.reshape(-1)])])


def gen_npy():
    arrays = {
        "npy_f2.npy": np.array([[1.0, -2.0], [0.000061035156, 65504.0], [math.nan, -math.inf]], "<f2"),
        "npy_f4.npy": np.arange(24, dtype="<f4").reshape(2, 3, 4) / 7,
        "npy_f8.npy": np.array([math.pi, -math.e, 1e-310, math.inf], "<f8"),
        "npy_i1.npy": np.array([-128, -1, 0, 127], "i1"),
        "npy_u1.npy": np.arange(0, 256, 15, dtype="u1").reshape(1, 18),
        "npy_i4.npy": np.array([[-(2 ** 31), 2 ** 31 - 1, 0]], "<i4"),
        "npy_i8.npy": np.array([-(2 ** 63), 2 ** 53 + 1, 5], "<i8"),
        "npy_b1.npy": np.array([True, False, True], "?"),
        "npy_scalar.npy": np.array(2.5, "<f8"),
        "npy_empty.npy": np.zeros((0, 3), "<f4"),
    }
    for fname, a in arrays.items():
        np.save(os.path.join(GOOD, fname), a)
        npy_record(fname, a)
    for fname, version in (("npy_v2.npy", (2, 0)), ("npy_v3.npy", (3, 0))):
        a = np.arange(6, dtype="<i4").reshape(3, 2) - 3
        with open(os.path.join(GOOD, fname), "wb") as f:
            np.lib.format.write_array(f, a, version=version)
        npy_record(fname, a)


IDX_TYPES = {0x08: (">u1", "U8"), 0x09: (">i1", "I8"), 0x0B: (">i2", "I32"), 0x0C: (">i4", "I32"),
             0x0D: (">f4", "F32"), 0x0E: (">f8", "F64")}


def idx_bytes(code, arr):
    a = np.asarray(arr, IDX_TYPES[code][0])
    return bytes([0, 0, code, a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape) + a.tobytes()


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def gen_idx():
    files = {
        "idx_labels_u8.idx": (0x08, np.array([9, 0, 0, 3, 0, 2, 7, 2, 5, 5], "u1")),
        "idx_images_u8.idx": (0x08, np.arange(2 * 4 * 3, dtype="u1").reshape(2, 4, 3) * 10),
        "idx_i8.idx": (0x09, np.array([-128, -1, 0, 1, 127], "i1")),
        "idx_i16.idx": (0x0B, np.array([[-32768, -1], [256, 32767]], "i2")),
        "idx_i32.idx": (0x0C, np.array([-(2 ** 31), 16909060, 2 ** 31 - 1], "i4")),
        "idx_f32.idx": (0x0D, np.array([[1.5, -2.0, 3.0e-39]], "f4")),
        "idx_f64.idx": (0x0E, np.array([math.pi, -1e300], "f8")),
    }
    for fname, (code, a) in files.items():
        data = idx_bytes(code, a)
        values = [float(v) for v in a.reshape(-1)]
        t = [("data", IDX_TYPES[code][1], a.shape, values)]
        write(os.path.join(GOOD, fname), data)
        record(fname, "idx", t)
        write(os.path.join(GOOD, fname + ".gz"), gz(data))
        record(fname + ".gz", "idx", t)
    # a gzip file of two concatenated members is still one valid stream
    data = idx_bytes(0x08, np.arange(200, dtype="u1"))
    write(os.path.join(GOOD, "idx_two_members.idx.gz"), gz(data[:50]) + gz(data[50:]))
    record("idx_two_members.idx.gz", "idx", [("data", "U8", (200,), list(range(200)))])
    # gzip by content, not by name: a gzip file without .gz
    write(os.path.join(GOOD, "idx_gzip_no_ext.idx"), gz(idx_bytes(0x08, np.array([1, 2, 3], "u1"))))
    record("idx_gzip_no_ext.idx", "idx", [("data", "U8", (3,), [1, 2, 3])])


# --------------------------------------------------------------- bad fixtures

bad = {}


def bad_file(fname, data, reader, status, contains):
    write(os.path.join(BAD, fname), data)
    bad[fname] = {"reader": reader, "status": status, "contains": contains}


def raw_st(header, data=b"", length=None):
    h = header.encode("utf-8") if isinstance(header, str) else header
    return struct.pack("<Q", len(h) if length is None else length) + h + data


def st_entry(name, dtype, shape, b, e):
    return '"%s":{"dtype":"%s","shape":%s,"data_offsets":[%d,%d]}' % (name, dtype, json.dumps(shape), b, e)


def gen_bad_safetensors():
    F, U = "format error", "unsupported"
    ok = st_bytes([st_tensor("w", "F32", (2,), [1.0, 2.0])])
    bad_file("st_truncated_length.safetensors", ok[:5], "safetensors", F, "too short")
    bad_file("st_empty_file.safetensors", b"", "safetensors", F, "too short")
    bad_file("st_header_past_end.safetensors", raw_st("{}", length=1000), "safetensors", F, "runs past the end")
    bad_file("st_header_absurd.safetensors", raw_st("{}", length=2 ** 64 - 1), "safetensors", F, "exceeds the")
    bad_file("st_truncated_data.safetensors", ok[:-3], "safetensors", F, "run past")
    bad_file("st_offsets_overflow.safetensors", raw_st("{" + st_entry("w", "F32", [2], 0, 2 ** 64 - 1) + "}", b"\0" * 8),
             "safetensors", F, "data_offsets")
    bad_file("st_offsets_overlap.safetensors",
             raw_st("{" + st_entry("a", "F32", [2], 0, 8) + "," + st_entry("b", "F32", [2], 4, 12) + "}", b"\0" * 12),
             "safetensors", F, "overlap")
    bad_file("st_offsets_hole.safetensors",
             raw_st("{" + st_entry("a", "F32", [2], 0, 8) + "," + st_entry("b", "F32", [2], 12, 20) + "}", b"\0" * 20),
             "safetensors", F, "belong to no tensor")
    bad_file("st_offsets_out_of_range.safetensors", raw_st("{" + st_entry("a", "F32", [2], 8, 16) + "}", b"\0" * 8),
             "safetensors", F, "run past the 8-byte data region")
    bad_file("st_offsets_reversed.safetensors", raw_st("{" + st_entry("a", "F32", [0], 8, 0) + "}", b"\0" * 8),
             "safetensors", F, "end before they begin")
    bad_file("st_offsets_shape_mismatch.safetensors",
             raw_st("{" + st_entry("w", "F32", [4, 5], 0, 96) + "}", b"\0" * 96), "safetensors", F,
             "data_offsets [0, 96] do not match shape [4, 5] of F32 (80 bytes)")
    bad_file("st_leftover_data.safetensors", raw_st("{" + st_entry("a", "F32", [2], 0, 8) + "}", b"\0" * 12),
             "safetensors", F, "last 4 bytes")
    bad_file("st_shape_overflow.safetensors",
             raw_st("{" + st_entry("w", "F32", [2 ** 32, 2 ** 32, 2 ** 32], 0, 0) + "}"), "safetensors", F, "overflows")
    bad_file("st_shape_huge_dim.safetensors", raw_st("{" + st_entry("w", "U8", [2 ** 64], 0, 0) + "}"), "safetensors",
             F, "integer in [0, 2^53]")
    bad_file("st_negative_dim.safetensors", raw_st("{" + st_entry("w", "F32", [-1, 4], 0, 16) + "}", b"\0" * 16),
             "safetensors", F, "negative dimension -1")
    bad_file("st_fractional_dim.safetensors", raw_st("{" + st_entry("w", "U8", [2.5], 0, 2) + "}", b"\0" * 2),
             "safetensors", F, "integer")
    bad_file("st_too_many_dims.safetensors", raw_st("{" + st_entry("w", "U8", [1] * 9, 0, 1) + "}", b"\0"),
             "safetensors", U, "more than 8 dimensions")
    bad_file("st_unknown_dtype.safetensors", raw_st("{" + st_entry("w", "F99", [1], 0, 4) + "}", b"\0" * 4),
             "safetensors", F, "unknown dtype 'F99'")
    bad_file("st_unsupported_dtype.safetensors", raw_st("{" + st_entry("w", "U16", [1], 0, 2) + "}", b"\0" * 2),
             "safetensors", U, "U16")
    bad_file("st_dtype_not_string.safetensors", raw_st('{"w":{"dtype":3,"shape":[1],"data_offsets":[0,1]}}', b"\0"),
             "safetensors", F, "dtype is not a string")
    bad_file("st_missing_field.safetensors", raw_st('{"w":{"dtype":"U8","shape":[1]}}', b"\0"), "safetensors", F,
             "lacks 'data_offsets'")
    bad_file("st_unknown_field.safetensors",
             raw_st('{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}}', b"\0"), "safetensors", F,
             "unknown field 'x'")
    bad_file("st_entry_not_object.safetensors", raw_st('{"w":[1,2]}'), "safetensors", F, "not a JSON object")
    bad_file("st_invalid_json.safetensors", raw_st('{"w":{"dtype":"F32",'), "safetensors", F, "not valid JSON")
    bad_file("st_not_object.safetensors", raw_st("[1, 2]"), "safetensors", F, "start with '{'")
    bad_file("st_trailing_text.safetensors", raw_st("{} x"), "safetensors", F, "text after the JSON object")
    bad_file("st_duplicate_names.safetensors",
             raw_st("{" + st_entry("w", "U8", [1], 0, 1) + "," + st_entry("w", "U8", [1], 1, 2) + "}", b"\0\0"),
             "safetensors", F, "duplicate key 'w'")
    bad_file("st_duplicate_metadata.safetensors", raw_st('{"__metadata__":{},"__metadata__":{}}'), "safetensors", F,
             "duplicate")
    bad_file("st_metadata_non_string.safetensors", raw_st('{"__metadata__":{"epochs":3}}'), "safetensors", F,
             "__metadata__ value of 'epochs' is not a string")
    bad_file("st_metadata_not_object.safetensors", raw_st('{"__metadata__":"pt"}'), "safetensors", F,
             "__metadata__ is not a JSON object")
    bad_file("st_bad_utf8.safetensors", raw_st(b'{"w\xff":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\0"),
             "safetensors", F, "not valid UTF-8")
    bad_file("st_control_char.safetensors", raw_st(b'{"a\x00b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\0"),
             "safetensors", F, "control character")


def npy_raw(header, data=b"", version=(1, 0), hlen=None):
    h = header.encode("latin1") if isinstance(header, str) else header
    fmt = "<H" if version[0] == 1 else "<I"
    return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, len(h) if hlen is None else hlen) + h + data


def gen_bad_npy():
    F, U = "format error", "unsupported"
    good = io.BytesIO()
    np.save(good, np.arange(4, dtype="<f4"))
    good = good.getvalue()
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }\n"
    bad_file("npy_bad_magic.npy", b"\x93NUMPX" + good[6:], "npy", F, "not an npy file")
    bad_file("npy_bad_version.npy", good[:6] + b"\x04\x00" + good[8:], "npy", U, "version 4.0")
    bad_file("npy_truncated_prefix.npy", good[:9], "npy", F, "not an npy file")
    bad_file("npy_header_len_lies.npy", npy_raw(hdr, hlen=60000), "npy", F, "runs past the end")
    bad_file("npy_header_absurd.npy", npy_raw(hdr, version=(2, 0), hlen=2 ** 32 - 1), "npy", F, "exceeds the")
    bad_file("npy_big_endian.npy", npy_raw(hdr.replace("<f4", ">f4"), b"\0" * 16), "npy", U, "big-endian")
    bad_file("npy_fortran_order.npy", npy_raw(hdr.replace("False", "True"), b"\0" * 16), "npy", U, "fortran_order")
    bad_file("npy_unknown_descr.npy", npy_raw(hdr.replace("<f4", "<c8"), b"\0" * 32), "npy", U, "'<c8'")
    bad_file("npy_structured.npy", npy_raw("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }\n",
                                           b"\0" * 16), "npy", U, "structured")
    bad_file("npy_short_data.npy", good[:-4], "npy", F, "truncated")
    bad_file("npy_trailing_data.npy", good + b"\0", "npy", F, "trailing data")
    bad_file("npy_shape_mismatch.npy", npy_raw(hdr.replace("(4,)", "(10,)"), b"\0" * 16), "npy", F, "truncated")
    bad_file("npy_negative_dim.npy", npy_raw(hdr.replace("(4,)", "(-4,)"), b"\0" * 16), "npy", F, "negative dimension")
    bad_file("npy_shape_overflow.npy", npy_raw(hdr.replace("(4,)", "(4611686018427387904, 4611686018427387904)")),
             "npy", F, "overflows")
    bad_file("npy_shape_not_tuple.npy", npy_raw(hdr.replace("(4,)", "(4)"), b"\0" * 16), "npy", F, "trailing comma")
    bad_file("npy_missing_key.npy", npy_raw("{'descr': '<f4', 'fortran_order': False, }\n", b"\0" * 4), "npy", F,
             "lacks the key 'shape'")
    bad_file("npy_duplicate_key.npy",
             npy_raw("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,), }\n", b"\0" * 16),
             "npy", F, "repeats the key 'descr'")
    bad_file("npy_unknown_key.npy",
             npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': 1, }\n", b"\0" * 16), "npy", F,
             "unknown key 'x'")
    bad_file("npy_header_syntax.npy", npy_raw("{'descr': '<f4' 'fortran_order': False, 'shape': (4,) }\n", b"\0" * 16),
             "npy", F, "expected ',' or '}'")
    bad_file("npy_header_unclosed.npy", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), \n",
                                                b"\0" * 16), "npy", F, "npy header")
    bad_file("npy_v3_bad_utf8.npy", npy_raw(b"{'descr': '<f4\xc3', 'fortran_order': False, 'shape': (4,), }\n",
                                            b"\0" * 16, version=(3, 0)), "npy", F, "not UTF-8")


def gen_bad_idx():
    F = "format error"
    good = idx_bytes(0x08, np.arange(12, dtype="u1").reshape(3, 4))
    bad_file("idx_wrong_magic.idx", b"\x01" + good[1:], "idx", F, "not an IDX file")
    bad_file("idx_wrong_type.idx", good[:2] + b"\x0a" + good[3:], "idx", F, "unknown IDX element type 0x0a")
    bad_file("idx_zero_ndim.idx", b"\0\0\x08\0", "idx", F, "0 dimensions")
    bad_file("idx_zero_dim.idx", b"\0\0\x08\x02" + struct.pack(">II", 3, 0), "idx", F, "dimension 1 is 0")
    bad_file("idx_absurd_dims.idx", b"\0\0\x0e\x03" + struct.pack(">III", 65535, 65535, 65535) + b"\0" * 8, "idx",
             "out of memory", "limit")
    bad_file("idx_too_many_dims.idx", b"\0\0\x08\x09" + struct.pack(">9I", *[1] * 9) + b"\0", "idx", "unsupported",
             "9 dimensions")
    bad_file("idx_header_truncated.idx", good[:10], "idx", F, "truncated")
    bad_file("idx_truncated_data.idx", good[:-1], "idx", F, "truncated")
    bad_file("idx_trailing_data.idx", good + b"\0", "idx", F, "trailing data")
    bad_file("idx_i32_odd_length.idx", idx_bytes(0x0C, np.array([1, 2], "i4"))[:-2], "idx", F, "truncated")
    g = gz(good)
    corrupt = bytearray(g)
    corrupt[12] ^= 0xFF  # inside the deflate data
    bad_file("idx_gz_corrupt.idx.gz", bytes(corrupt), "idx", F, "gzip")
    crc = bytearray(g)
    crc[-8] ^= 0x01  # the CRC-32 in the trailer
    bad_file("idx_gz_bad_crc.idx.gz", bytes(crc), "idx", F, "corrupt gzip data")
    bad_file("idx_gz_truncated.idx.gz", g[:-6], "idx", F, "truncated")
    bad_file("idx_gz_trailing_junk.idx.gz", g + b"junk", "idx", F, "trailing junk")
    bad_file("idx_gz_trailing_data.idx.gz", gz(good + b"\0\0"), "idx", F, "trailing data")
    bad_file("idx_gz_truncated_data.idx.gz", gz(good[:-3]), "idx", F, "truncated")
    bad_file("idx_gz_claims_too_much.idx.gz", gz(b"\0\0\x08\x01" + struct.pack(">I", 2 ** 31 - 1) + b"\0" * 10),
             "idx", F, "truncated")


# ------------------------------------------------------------ sparq checker


def check_sparq(directory):
    with open(os.path.join(GOOD, "expected.json"), encoding="utf-8") as f:
        exp = json.load(f)
    checked = 0
    failures = []
    for fname, e in sorted(exp.items()):
        path = os.path.join(directory, fname)
        if e["format"] == "idx":
            continue  # sparq does not write IDX
        if not os.path.exists(path):
            failures.append("%s: missing (did test_io_safetensors / test_io_npy run?)" % path)
            continue
        with open(path, "rb") as f:
            data = f.read()
        try:
            if e["format"] == "safetensors":
                check_st_file(data, e, os.path.join(GOOD, fname))
            else:
                check_npy_file(data, path, os.path.join(GOOD, fname))
            checked += 1
        except AssertionError as err:
            failures.append("%s: %s" % (path, err))
    for msg in failures:
        print("FAIL", msg)
    print("checked %d sparq-written files, %d failures" % (checked, len(failures)))
    return 1 if failures or not checked else 0


def check_st_file(data, e, original):
    tensors, meta, header = st_read(data)
    assert (8 + len(header)) % 8 == 0, "data region not 8-byte aligned"
    assert header.rstrip(b" ").endswith(b"}") and set(header[len(header.rstrip(b" ")):]) <= {0x20}, "bad padding"
    want, want_meta, _ = st_read(open(original, "rb").read())
    assert (meta or {}) == (want_meta or {}), "metadata %r != %r" % (meta, want_meta)
    assert len(tensors) == len(want), "tensor count"
    for (n, d, s, raw), (wn, wd, ws, wraw) in zip(tensors, want):
        assert (n, d, s) == (wn, wd, ws), "%s: %r != %r" % (n, (n, d, s), (wn, wd, ws))
        assert raw == wraw, "%s: data differs" % n


def check_npy_file(data, path, original):
    a = np.load(path, allow_pickle=False)
    w = np.load(original, allow_pickle=False)
    assert a.dtype == w.dtype and a.shape == w.shape, "%s %s != %s %s" % (a.dtype, a.shape, w.dtype, w.shape)
    assert a.tobytes() == w.tobytes(), "values differ"
    ref = io.BytesIO()
    np.lib.format.write_array(ref, w, version=(1, 0))  # what numpy.save writes
    assert data == ref.getvalue(), "not byte-identical to numpy.save"


# -------------------------------------------------------------------- main


def main(argv):
    if len(argv) == 3 and argv[1] == "--check-sparq":
        return check_sparq(argv[2])
    if len(argv) != 1:
        print(__doc__)
        return 2
    for d in (GOOD, BAD):
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            os.remove(os.path.join(d, f))
    gen_safetensors()
    gen_npy()
    gen_idx()
    with open(os.path.join(GOOD, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    gen_bad_safetensors()
    gen_bad_npy()
    gen_bad_idx()
    with open(os.path.join(FIX, "bad_expected.json"), "w", encoding="utf-8") as f:
        json.dump(bad, f, indent=1, sort_keys=True)
        f.write("\n")
    # the Python reader must agree that every valid safetensors fixture is valid
    for fname, e in expected.items():
        if e["format"] == "safetensors":
            st_read(open(os.path.join(GOOD, fname), "rb").read())
    print("wrote %d valid and %d malformed fixtures" % (len(expected), len(bad)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
