"""A keyed pseudo-random permutation of range(n), computed position by position without building it:
the training loader's window order (corral.train.data), deterministic for a seed on every machine."""

from __future__ import annotations

import numpy as np

_MASK64 = (1 << 64) - 1
_ROUNDS = 4  # Feistel rounds, two on each half (Luby and Rackoff 1988: 4 make a pseudo-random permutation)


def mix64(x: int) -> int:
    """splitmix64's finaliser: a well-mixed 64-bit hash of an integer (Steele et al. 2014)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def permute_many(i: np.ndarray, n: int, keys: np.ndarray) -> np.ndarray:
    """Positions of each i (0 ≤ i < n) in the seeded permutation of range(n) named by its key,
    without building the permutation: an alternating Feistel network (as format-preserving
    encryption's FFX uses) on the bit_length(n − 1) bits of the index, its high and low halves
    xored in turn with a keyed hash of the other (multiply by an odd constant, fold the high bits
    down), cycle-walked back into range (each walk lands in range with probability > 1/2). numpy's
    uint64 arithmetic wraps modulo 2⁶⁴, as the hash wants."""
    i = np.asarray(i, dtype=np.uint64)
    if n <= 1:
        return np.zeros(i.shape, dtype=np.int64)
    bits = (n - 1).bit_length()
    lo_bits = np.uint64(bits - bits // 2)
    masks = (np.uint64((1 << (bits - bits // 2)) - 1), np.uint64((1 << (bits // 2)) - 1))  # low, high half
    keys = np.broadcast_to(np.asarray(keys, dtype=np.uint64), i.shape)
    salts = [keys + np.uint64(r * 0x632BE59BD9B4E019 & _MASK64) for r in range(_ROUNDS)]
    mult, fold = np.uint64(0xBF58476D1CE4E5B9), np.uint64(31)
    x, out, todo = i.copy(), np.empty(i.shape, dtype=np.int64), np.arange(len(i))
    while len(todo):
        high, low = x[todo] >> lo_bits, x[todo] & masks[0]
        for r in range(_ROUNDS):
            if r % 2 == 0:
                f = (high ^ salts[r][todo]) * mult
                low = low ^ ((f ^ (f >> fold)) & masks[0])
            else:
                f = (low ^ salts[r][todo]) * mult
                high = high ^ ((f ^ (f >> fold)) & masks[1])
        y = (high << lo_bits) | low
        done = y < np.uint64(n)
        out[todo[done]] = y[done].astype(np.int64)
        x[todo[~done]] = y[~done]
        todo = todo[~done]
    return out


def permute(i: int, n: int, key: int) -> int:
    """`permute_many` for one position."""
    return int(permute_many(np.array([i]), n, np.array([key], dtype=np.uint64))[0])
