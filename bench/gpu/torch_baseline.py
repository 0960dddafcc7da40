#!/usr/bin/env python3
"""PyTorch on the shapes of kernels_bench: the anchors of bench/gpu/check.sh.

    python3 bench/gpu/torch_baseline.py [--shape llama3-8b|smol] [--iters N]

Prints a table whose (op, shape) cells match kernels_bench's rows, so that
check.sh can put each cohost time beside torch's: torch.matmul for the GEMMs,
scaled_dot_product_attention for attention (contiguous K/V, not paged: torch
has no paged cache, so this is the cheaper layout), and an eager decode step
of the same layers. Times are wall clock over N calls queued back to back,
then one synchronize, as in kernels_bench.
"""
import argparse
import math
import sys
import time

SHAPES = {
    "llama3-8b": dict(hidden=4096, inter=14336, heads=32, kv_heads=8, head_dim=128,
                      vocab=128256, layers=32),
    "smol": dict(hidden=576, inter=1536, heads=9, kv_heads=3, head_dim=64, vocab=49152,
                 layers=30),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="llama3-8b", choices=sorted(SHAPES))
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("torch_baseline: no torch here", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("torch_baseline: torch sees no CUDA device", file=sys.stderr)
        return 2
    s = SHAPES[args.shape]
    dev, bf16 = "cuda", torch.bfloat16
    torch.manual_seed(0)

    def timed(fn):
        fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.iters):
            fn()
        torch.cuda.synchronize()
        return (time.perf_counter() - t0) / args.iters

    def row(op, shape, seconds):
        print(f"| {op} | {shape} | {seconds * 1e6:.1f} |", flush=True)

    def rand(*shape, scale=1.0):
        return (torch.rand(*shape, device=dev, dtype=bf16) * 2 - 1) * scale

    print(f"torch_baseline: torch {torch.__version__}, {torch.cuda.get_device_name(0)}, "
          f"shape {args.shape}, {args.iters} iterations\n")
    print("| op | shape | us |\n|---|---|---|")
    H, I, hd = s["hidden"], s["inter"], s["head_dim"]
    qw, kvw = s["heads"] * hd, s["kv_heads"] * hd
    for name, n, k in (("qkv", qw + 2 * kvw, H), ("o", H, qw), ("gate_up", 2 * I, H),
                       ("down", H, I)):
        w = rand(n, k, scale=0.05)
        for m in (1, 32, 2048):
            a = rand(m, k)
            row(f"gemm {name}", f"m={m} n={n} k={k}", timed(lambda: torch.matmul(a, w.t())))
        del w
    w = rand(s["vocab"], H, scale=0.05)
    for m in (1, 32):
        a = rand(m, H)
        row("lm_head (fp32 out)", f"m={m} n={s['vocab']} k={H}",
            timed(lambda: torch.matmul(a, w.t()).float()))
    del w

    try:
        from torch.nn.attention.bias import causal_lower_right
    except ImportError:
        causal_lower_right = None
    gqa = {"enable_gqa": True} if "enable_gqa" in (F.scaled_dot_product_attention.__doc__ or "") else None
    for seqs, cached, fresh in ((1, 4095, 1), (1, 32767, 1), (32, 4095, 1), (128, 1023, 1),
                                (1, 0, 2048), (4, 2048, 512)):
        ctx = cached + fresh
        q = rand(seqs, s["heads"], fresh, hd)
        k = rand(seqs, s["kv_heads"], ctx, hd)
        v = rand(seqs, s["kv_heads"], ctx, hd)
        if gqa is None:  # older torch: K/V expanded to every query head
            k = k.repeat_interleave(s["heads"] // s["kv_heads"], dim=1)
            v = v.repeat_interleave(s["heads"] // s["kv_heads"], dim=1)
        kw = gqa or {}
        if fresh == 1:
            fn = lambda: F.scaled_dot_product_attention(q, k, v, **kw)
        elif cached == 0:
            fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, **kw)
        elif causal_lower_right is not None:
            mask = causal_lower_right(fresh, ctx)
            fn = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **kw)
        else:
            continue
        row("attention decode" if fresh == 1 else "attention prefill",
            f"{seqs} seq x {fresh} new over {cached} cached", timed(fn))
        del q, k, v

    # An eager decode step: every layer on the same weights, as kernels_bench.
    wqkv, wo = rand(qw + 2 * kvw, H, scale=0.05), rand(H, qw, scale=0.05)
    wgu, wd = rand(2 * I, H, scale=0.05), rand(H, I, scale=0.05)
    lm, norm = rand(s["vocab"], H, scale=0.05), rand(H)
    inv_freq = 500000.0 ** (-torch.arange(0, hd, 2, device=dev, dtype=torch.float32) / hd)

    def rms(x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-5)).to(bf16) * norm

    def rope(t, pos):
        ang = pos.float()[:, None] * inv_freq[None, :]
        cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
        t1, t2 = t[..., : hd // 2].float(), t[..., hd // 2:].float()
        return torch.cat([t1 * cos - t2 * sin, t2 * cos + t1 * sin], -1).to(bf16)

    for batch in (1, 32, 128):
        ctx = 1024
        kc = rand(batch, s["kv_heads"], ctx, hd)
        vc = rand(batch, s["kv_heads"], ctx, hd)
        if gqa is None:
            kc = kc.repeat_interleave(s["heads"] // s["kv_heads"], dim=1)
            vc = vc.repeat_interleave(s["heads"] // s["kv_heads"], dim=1)
        x = rand(batch, H)
        pos = torch.full((batch,), ctx - 1, device=dev)

        def step():
            h = x
            for _ in range(s["layers"]):
                qkv = torch.matmul(rms(h), wqkv.t())
                q, k, v = qkv.split([qw, kvw, kvw], dim=-1)
                q = rope(q.view(batch, s["heads"], hd), pos)
                k = rope(k.view(batch, s["kv_heads"], hd), pos)
                kc[:, : s["kv_heads"], ctx - 1] = k  # the new token's K/V written in place
                vc[:, : s["kv_heads"], ctx - 1] = v.view(batch, s["kv_heads"], hd)
                a = F.scaled_dot_product_attention(q[:, :, None, :], kc, vc, **(gqa or {}))
                h = h + torch.matmul(a.reshape(batch, qw), wo.t())
                gu = torch.matmul(rms(h), wgu.t())
                h = h + torch.matmul(F.silu(gu[:, :I]) * gu[:, I:], wd.t())
            return torch.matmul(rms(h), lm.t()).float()

        row("decode step", f"batch {batch} at {ctx} tokens, {s['layers']} layers", timed(step))
        del kc, vc
    return 0


if __name__ == "__main__":
    sys.exit(main())
