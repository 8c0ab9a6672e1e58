#!/usr/bin/python3
"""Generates tests/fixtures/vnm/: reference RIA scores and V:N:M masks
computed independently of sparq (standard library + numpy only).

    /usr/bin/python3 tools/gen_vnm_fixtures.py

writes tests/fixtures/vnm/ria.safetensors with
    w            F32 [24, 40]  weights: normal draws, one all-zero column, one
                               all-zero row, repeated values (ties), an outlier
    x            F32 [33, 40]  calibration activations (tokens x in features)
    ria          F32 [24, 40]  RIA scores, power 0.5, computed in float64 from
                               the float32 inputs:
                               (|w|/colsum|w| + |w|/rowsum|w|) * ||x[:, j]||^0.5,
                               a zero sum making its term 0
    mask_8_2_5_joint, mask_8_2_5_twostep     U8 [24, 40]
    mask_16_2_8_joint, mask_16_2_8_twostep   U8 [32, 40] (rows padded to 32)
                               masks chosen on the float32 RIA scores by the
                               rules of the spec (joint: best 4-column subset
                               by the sum of each row's 2 best inside it;
                               two-step: the 4 columns with the largest sum,
                               then each row's 2 best), ties to the lower
                               column index / lexicographically first subset
    retained_*   F64 [1]       the kept score of each mask, summed per row
                               pair, then rows, groups and blocks in order
and w.npy, x.npy: the same w and x for the command-line tests.

Deterministic: running it twice gives identical bytes.
"""

import itertools
import json
import os
import struct

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "vnm")


def write_safetensors(path, tensors):
    """tensors: list of (name, numpy array); dtypes F32, F64, U8."""
    names = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64", np.dtype("u1"): "U8"}
    header, blobs, offset = {}, [], 0
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr)
        data = arr.tobytes()
        header[name] = {"dtype": names[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def ria(w, x, power=0.5):
    a = np.abs(w.astype(np.float64))
    col = a.sum(axis=0)
    row = a.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tc = np.where(col[None, :] != 0, a / col[None, :], 0.0)
        tr = np.where(row[:, None] != 0, a / row[:, None], 0.0)
    norms = np.sqrt((x.astype(np.float64) ** 2).sum(axis=0))
    return ((tc + tr) * norms[None, :] ** power).astype(np.float32)


def best2(row, subset):
    """The 2 best columns of `row` inside `subset`, ties to the lower index."""
    ranked = sorted(subset, key=lambda j: (-row[j], j))
    a, b = ranked[0], ranked[1]
    return (min(a, b), max(a, b)), row[a] + row[b]


def select(score, v, m, rule):
    """Mask and retained score of the padded, unpermuted score matrix."""
    rows, cols = score.shape
    rp, cp = -(-rows // v) * v, -(-cols // m) * m
    s = np.zeros((rp, cp), dtype=np.float64)
    s[:rows, :cols] = score
    mask = np.zeros((rp, cp), dtype=np.uint8)
    total = 0.0
    for b in range(rp // v):
        block = 0.0
        for g in range(cp // m):
            sub = s[b * v:(b + 1) * v, g * m:(g + 1) * m]
            if rule == "joint":
                best, best_sum = None, None
                for cand in itertools.combinations(range(m), 4):
                    acc = 0.0
                    for r in range(v):
                        acc += best2(sub[r], cand)[1]
                    if best is None or acc > best_sum:
                        best, best_sum = cand, acc
            else:
                colsum = [0.0] * m
                for r in range(v):
                    for j in range(m):
                        colsum[j] += sub[r, j]
                best = sorted(range(m), key=lambda j: (-colsum[j], j))[:4]
            bg = 0.0
            for r in range(v):
                (a, c), val = best2(sub[r], best)
                mask[b * v + r, g * m + a] = 1
                mask[b * v + r, g * m + c] = 1
                bg += val
            block += bg
        total += block
    return mask, total


def main():
    rng = np.random.default_rng(20241016)
    w = rng.standard_normal((24, 40)).astype(np.float32)
    w[:, 7] = 0                      # zero column: its column term is 0/0 -> 0
    w[5, :] = 0                      # zero row
    w[9, 10:20] = np.float32(0.25)   # ties inside a row
    w[2, 3] = np.float32(40.0)       # outlier
    x = rng.standard_normal((33, 40)).astype(np.float32)
    x[:, 11] *= 8                    # a loud input channel
    score = ria(w, x)
    tensors = [("w", w), ("x", x), ("ria", score)]
    for v, m in ((8, 5), (16, 8)):
        for rule in ("joint", "twostep"):
            mask, total = select(score.astype(np.float64), v, m, rule)
            tag = "%d_2_%d_%s" % (v, m, rule)
            tensors.append(("mask_" + tag, mask))
            tensors.append(("retained_" + tag, np.array([total], dtype=np.float64)))
    os.makedirs(OUT, exist_ok=True)
    write_safetensors(os.path.join(OUT, "ria.safetensors"), tensors)
    np.save(os.path.join(OUT, "w.npy"), w)
    np.save(os.path.join(OUT, "x.npy"), x)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
