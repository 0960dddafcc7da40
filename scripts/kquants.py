"""K-quant encoders (Q4_K, Q5_K, Q6_K) in numpy, for test models made here:
the gguf package reads and dequantizes these types but cannot write them.

Simpler than llama.cpp's encoders (no search for the error-minimizing scale:
each sub-block's range sets its scale), but the output is the same block
layout, bit for bit what llama.cpp's and cohost's readers expect. Only
elementwise arithmetic and max/min are used, so the bytes do not depend on
the summation order of the machine's numpy.
"""
import numpy as np

QK_K = 256


def _half(v):
    return np.asarray(v, dtype=np.float32).astype(np.float16)


def _safe_div(a, b):
    b = np.asarray(b, dtype=np.float32)
    return np.where(b != 0, a / np.where(b != 0, b, 1), 0).astype(np.float32)


def _pack_scales(sc, m):
    """Eight 6-bit scales and mins per super-block -> 12 bytes (ggml's order)."""
    sc, m = sc.astype(np.uint8), m.astype(np.uint8)
    out = np.zeros((sc.shape[0], 12), dtype=np.uint8)
    out[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    out[:, 4:8] = m[:, 0:4] | ((m[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((m[:, 4:8] & 0x0F) << 4)
    return out


def _scale_min_quants(x, levels):
    """x [n, 256] -> (d, dmin, sc[n, 8], m[n, 8], q[n, 8, 32]) for x ~ d sc q - dmin m."""
    sub = x.reshape(-1, 8, 32)
    lo = np.minimum(sub.min(axis=2), 0).astype(np.float32)
    hi = sub.max(axis=2).astype(np.float32)
    scale = (hi - lo) / np.float32(levels)
    d = _half(scale.max(axis=1) / np.float32(63))
    dmin = _half((-lo).max(axis=1) / np.float32(63))
    df, dminf = d.astype(np.float32), dmin.astype(np.float32)
    sc = np.clip(np.rint(_safe_div(scale, df[:, None])), 0, 63)
    m = np.clip(np.rint(_safe_div(-lo, dminf[:, None])), 0, 63)
    step = (df[:, None] * sc)[:, :, None]
    offset = (dminf[:, None] * m)[:, :, None]
    q = np.clip(np.rint(_safe_div(sub + offset, step)), 0, levels).astype(np.uint8)
    return d, dmin, sc, m, q


def quantize_q4_k(x):
    x = np.asarray(x, dtype=np.float32).reshape(-1, QK_K)
    d, dmin, sc, m, q = _scale_min_quants(x, 15)
    qs = (q[:, 0::2, :] | (q[:, 1::2, :] << 4)).reshape(-1, 128)
    return np.concatenate([d.view(np.uint8).reshape(-1, 2), dmin.view(np.uint8).reshape(-1, 2),
                           _pack_scales(sc, m), qs], axis=1)


def quantize_q5_k(x):
    x = np.asarray(x, dtype=np.float32).reshape(-1, QK_K)
    d, dmin, sc, m, q = _scale_min_quants(x, 31)
    low = q & 0x0F
    qs = (low[:, 0::2, :] | (low[:, 1::2, :] << 4)).reshape(-1, 128)
    high = (q >> 4) & 1  # [n, 8, 32]
    qh = np.zeros((x.shape[0], 32), dtype=np.uint8)
    for j in range(8):
        qh |= (high[:, j, :] << j).astype(np.uint8)
    return np.concatenate([d.view(np.uint8).reshape(-1, 2), dmin.view(np.uint8).reshape(-1, 2),
                           _pack_scales(sc, m), qh, qs], axis=1)


def quantize_q6_k(x):
    x = np.asarray(x, dtype=np.float32).reshape(-1, QK_K)
    groups = x.reshape(-1, 16, 16)
    scale = np.abs(groups).max(axis=2) / np.float32(31)  # per 16 values, >= 0
    d = _half(scale.max(axis=1) / np.float32(127))
    df = d.astype(np.float32)
    sc = np.clip(np.rint(_safe_div(scale, df[:, None])), -128, 127).astype(np.int8)
    step = (df[:, None] * sc.astype(np.float32))[:, :, None]
    q = (np.clip(np.rint(_safe_div(groups, step)), -32, 31) + 32).astype(np.uint8)
    q = q.reshape(-1, 2, 4, 32)  # [n, half, quarter, l]
    ql = np.zeros((x.shape[0], 2, 64), dtype=np.uint8)
    ql[:, :, 0:32] = (q[:, :, 0, :] & 0x0F) | ((q[:, :, 2, :] & 0x0F) << 4)
    ql[:, :, 32:64] = (q[:, :, 1, :] & 0x0F) | ((q[:, :, 3, :] & 0x0F) << 4)
    qh = np.zeros((x.shape[0], 2, 32), dtype=np.uint8)
    for c in range(4):
        qh |= ((q[:, :, c, :] >> 4) << (2 * c)).astype(np.uint8)
    return np.concatenate([ql.reshape(-1, 128), qh.reshape(-1, 64), sc.view(np.uint8),
                           d.view(np.uint8).reshape(-1, 2)], axis=1)


ENCODERS = {"Q4_K": quantize_q4_k, "Q5_K": quantize_q5_k, "Q6_K": quantize_q6_k}
