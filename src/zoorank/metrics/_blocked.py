"""Chunked float64 statistics of (N, D) features that may be float32, without full copies.

Why (issue 17): a float64 copy of 50,000 x 2,048 float32 features is 800 MB, and every
``float32 @ float64`` product or mixed subtraction makes numpy build one. The functions
here read the features in row blocks of about 16 MiB, convert each block to float64 and
accumulate in float64, so the result is what the float64 computation on an upcast copy
gives (same arithmetic, blocked summation order) while the extra memory is one block.

- :func:`row_blocks`: ``(start, stop)`` row ranges of about ``2**21`` entries each.
- :func:`class_stats`: counts, class means and the global mean in one pass.
- :func:`centred_gram`: ``(X - c)^T (X - c)`` (optionally only some rows, optionally with
  each row's class mean as ``c``) by BLAS ``syrk`` per block (half a GEMM's flops); with
  ``precision="float32"`` each block's product is taken in float32 (the precision of
  float32 references such as tllib's TransRate) and the blocks are summed in float64.
- :func:`apply_rows`: ``f(x[block] in float64)`` for every block, concatenated (e.g.
  logits and a log-softmax picked at the true label, never an (N, D) float64 array).

Pure numpy/scipy; the callers are validated metric functions (``validation.py``).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.linalg.blas import dsyrk, ssyrk

BLOCK_ELEMS = 1 << 16           # entries per streaming block: 512 KiB in float64 (stays in L2)
MATMUL_BLOCK_ELEMS = 1 << 19    # blocks multiplied by BLAS (logits, F^T y): fewer calls, 4 MiB
GRAM_BLOCK_ELEMS = 1 << 21      # entries per Gram block (>= 1,024 rows of 2,048): syrk needs tall blocks


def row_blocks(n: int, width: int, block_elems: int | None = None):
    """Row ranges ``[(start, stop), ...]`` covering ``0..n`` with about ``block_elems``
    (default: the module's ``BLOCK_ELEMS``, read at call time so that tests can shrink it)
    entries of a row ``width`` wide each (at least one row per block)."""
    step = max(1, (BLOCK_ELEMS if block_elems is None else block_elems) // max(1, width))
    return [(s, min(n, s + step)) for s in range(0, n, step)]


def as64(block: np.ndarray) -> np.ndarray:
    """A float64 view of ``block`` (no copy when already float64)."""
    return block.astype(np.float64, copy=False)


def _buffer(workspace: dict | None, key: str, shape: tuple, dtype) -> np.ndarray:
    """A (shape, dtype) array, taken from ``workspace`` when it holds a large enough one."""
    size = int(np.prod(shape))
    if workspace is not None:
        have = workspace.get((key, np.dtype(dtype)))
        if have is not None and have.size >= size:
            return have[:size].reshape(shape)
    out = np.empty(size, dtype=dtype)
    if workspace is not None:
        workspace[(key, np.dtype(dtype))] = out
    return out.reshape(shape)


def blocks64(x: np.ndarray, *, rows: np.ndarray | None = None, dtype=np.float64,
             block_elems: int | None = None, workspace: dict | None = None):
    """Yield ``(start, stop, block)``: rows ``start:stop`` of ``x`` (or of ``x[rows]``)
    copied into one reused, private ``dtype`` buffer (the caller may modify it in place;
    it is overwritten by the next block). Small blocks in one reused buffer (and, with a
    ``workspace`` dict, the same buffer across calls) avoid first-touch page faults, which
    on these shared virtual machines cost more than the arithmetic (a fresh 24 MB buffer
    took 0.3-0.6 s to fault in at load ~12)."""
    n_rows = x.shape[0] if rows is None else rows.shape[0]
    d = x.shape[1]
    ranges = row_blocks(n_rows, d, block_elems)
    if not ranges:
        return
    step = ranges[0][1] - ranges[0][0]
    buf = _buffer(workspace, "block", (step, d), dtype)
    gather = (_buffer(workspace, "gather", (step, d), x.dtype)
              if rows is not None and x.dtype != dtype else None)
    for s, e in ranges:
        out = buf[: e - s]
        if rows is None:
            np.copyto(out, x[s:e])
        elif gather is None:
            np.take(x, rows[s:e], axis=0, out=out)
        else:
            np.take(x, rows[s:e], axis=0, out=gather[: e - s])
            np.copyto(out, gather[: e - s])
        yield s, e, out


def class_stats(x: np.ndarray, codes: np.ndarray, n_classes: int):
    """``(counts (K,) int64, class means (K, D) float64, global mean (D,) float64)``.

    Rows are read in class order (gathered block by block into the reused float64 buffer)
    and each block's run of one class is summed down its columns (numpy loops, no BLAS
    call per block: the skinny (K x block) products stall on thread wake-ups when the
    cores are shared); classes without samples get a zero mean row."""
    n, d = x.shape
    counts = np.bincount(codes, minlength=n_classes).astype(np.int64)
    sums = np.zeros((n_classes, d))
    order = np.argsort(codes, kind="stable")
    for s, e, blk in blocks64(x, rows=order):
        for a, b, k in class_runs(codes[order[s:e]]):
            sums[k] += blk[a:b].sum(axis=0)
    means = sums / np.maximum(counts, 1)[:, None]
    return counts, means, sums.sum(axis=0) / n


def class_runs(sorted_codes: np.ndarray) -> list[tuple[int, int, int]]:
    """``[(start, stop, code), ...]``: the runs of equal values of a sorted code array."""
    if sorted_codes.size == 0:
        return []
    cut = np.flatnonzero(sorted_codes[1:] != sorted_codes[:-1]) + 1
    edges = np.concatenate([[0], cut, [sorted_codes.size]])
    return [(int(a), int(b), int(sorted_codes[a])) for a, b in zip(edges[:-1], edges[1:])]


def _syrk_add(acc: np.ndarray, block: np.ndarray) -> None:
    """``acc += block^T block`` (upper triangle only) by BLAS syrk, in the block's dtype."""
    block = np.ascontiguousarray(block)
    # a C-contiguous (b, D) block is a Fortran-contiguous (D, b) matrix: syrk(trans=0) of
    # it is block^T block without a copy
    if block.dtype == np.float32:
        acc += ssyrk(1.0, block.T, trans=0, lower=0)
    else:
        acc += dsyrk(1.0, block.T, trans=0, lower=0)


def symmetrise_upper(c: np.ndarray) -> np.ndarray:
    """``c`` with zero strict lower triangle (syrk output) made symmetric, in place."""
    c += np.triu(c, 1).T
    return c


def centred_gram(x: np.ndarray, center: np.ndarray, *, rows: np.ndarray | None = None,
                 codes: np.ndarray | None = None, precision: str = "float64",
                 row_sq: np.ndarray | None = None, symmetric: bool = True,
                 workspace: dict | None = None) -> np.ndarray:
    """``sum_i (x_i - c_i)(x_i - c_i)^T`` (D, D) float64 over ``rows`` (default all).

    ``center``: (D,) one centre for every row, or (K, D) with ``codes`` (N,) giving each
    row's centre ``center[codes[i]]`` (within-class scatter). ``precision``: "float64"
    (each block converted to float64) or "float32" (block products in float32, summed in
    float64). ``row_sq``: optional (len(rows),) output receiving ``||x_i - c_i||^2``
    (float64), for the Ledoit-Wolf estimate. ``symmetric=False`` returns the upper
    triangle only (zeros below), enough for an upper Cholesky factorisation.
    Blocks of ``GRAM_BLOCK_ELEMS`` entries (tall enough for syrk to run at GEMM speed);
    ``workspace``: a dict reused across calls (e.g. one per class) to keep their buffers.
    """
    if precision not in ("float64", "float32"):
        raise ValueError(f"precision must be 'float64' or 'float32', got {precision!r}")
    d = x.shape[1]
    acc = np.zeros((d, d))
    dtype = np.float32 if precision == "float32" else np.float64
    centre = center.astype(dtype)
    for s, e, blk in blocks64(x, rows=rows, dtype=dtype, block_elems=GRAM_BLOCK_ELEMS,
                              workspace=workspace):
        if codes is None:
            blk -= centre
        else:
            blk -= centre[codes[s:e] if rows is None else codes[rows[s:e]]]
        if row_sq is not None:
            row_sq[s:e] = np.einsum("ij,ij->i", blk, blk, dtype=np.float64)
        _syrk_add(acc, blk)
    return symmetrise_upper(acc) if symmetric else acc


def apply_rows(x: np.ndarray, fn: Callable[[np.ndarray, slice], np.ndarray]) -> np.ndarray:
    """``concatenate([fn(float64 x[s:e], slice(s, e)) for each block])``: a per-row result
    (e.g. logits reduced to one number per row) without an (N, D) float64 copy. ``fn``
    must not keep its block (the buffer is reused). Blocks of ``MATMUL_BLOCK_ELEMS``
    entries: ``fn`` typically multiplies them by BLAS, whose per-call thread wake-ups make
    many tiny products slow on a shared machine."""
    return np.concatenate([fn(blk, slice(s, e))
                           for s, e, blk in blocks64(x, block_elems=MATMUL_BLOCK_ELEMS)])
