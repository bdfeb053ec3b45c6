"""Type guesses for registers: bool, u16/i16, and 32-bit pairs by plausibility.

Passive monitoring never sees the PLC's tag table, so the inventory guesses
how registers are meant, from the values it sees:

- single registers: ``bool`` when only 0 and 1 were seen; ``i16`` when a value
  with the top bit set was seen and every value read as signed lies within
  -16384..16383 (0xFFFF and 1 are -1 and 1); ``u16`` otherwise.
- pairs of adjacent registers read in the same response, in both word
  orders: ``big`` (ABCD, the first register holds the high word, the Modbus
  convention) and ``little`` (CDAB, word-swapped, common on PLCs):

  - ``float32`` when every informative sample is finite with
    1e-4 <= |x| <= 1e7 (physical values) and at least one has a non-zero low
    word (a value next to a zero register is far more often a u16 than a
    "round" float such as 23.5, whose low word is 0: such floats need a user map);
  - ``i32``/``u32`` when every sample lies within +-1e9 and at least one
    needs both halves (a high word other than 0 and 0xFFFF, and a low word of
    256 or more); ``i32`` once a negative value was seen.  Two small adjacent
    counters can still pass for one u32; a user map settles such cases.

  Changes between consecutive reads count too: the high word of a real 32-bit
  value does not change alone (that would be a jump by a multiple of 65536,
  or of a float's exponent with the same low mantissa bits), so pairs whose
  "high" word changed alone in more than one and 10% of their changes (a float
  that exactly doubles keeps its low word) are no 32-bit
  value in that order; and an integer needs a carry (both words changed, the
  high one by one) before it counts as one.  Static or slowly moving 32-bit
  integers therefore show as two u16 until a carry is seen.

  A sample where both words are 0 says nothing and is skipped.  The wrong word
  order of a real float puts mantissa bits in the exponent, which soon leaves
  the plausible range as values change.  Ties go to float32 over integers,
  to ``big`` over ``little``, and between integer orders to the smaller
  magnitude.  Overlapping candidates (registers 1-2 against 0-1 and 2-3) are
  settled by taking the set of non-overlapping pairs with the most evidence.

The guesses are hints for people (and policies written by people), not facts;
a user map (see :mod:`._usermap`) overrides them.
"""

from __future__ import annotations

import struct
from typing import Any, Final

__all__ = ["PairStats", "analyse_pairs", "guess_single", "choose_pairs", "interpret",
           "TYPES", "WORD_ORDERS"]

TYPES: Final = ("bool", "u16", "i16", "u32", "i32", "float32")
WORD_ORDERS: Final = ("big", "little")
_FLOAT_MIN: Final = 1e-4
_FLOAT_MAX: Final = 1e7
_INT_MAX: Final = 1_000_000_000
#: Pair evidence is updated from at most this many samples per pair (bounded CPU).
MAX_PAIR_SAMPLES: Final = 128


class PairStats:
    """Evidence that registers (a, a+1) hold one 32-bit value, per word order.

    Counters per word order (suffix 0 big, 1 little): ``f``/``i``: samples plausible as
    float32/int32; ``fproof``: plausible float samples with a non-zero low word;
    ``proof``: int samples that need both halves; ``neg``: negative ints seen;
    ``hionly``: changes of the high word alone; ``carry``: changes of both words with the
    high one moving by one.  ``changes``: samples that differ from the previous read;
    ``lo``/``hi``: value range seen per interpretation (float order 0/1, int order 0/1).

    The counters are plain fields, not lists: a register map holds thousands of pairs,
    and a list each would be thousands of objects for the garbage collector to walk.
    """

    __slots__ = ("n", "changes", "f0", "f1", "fproof0", "fproof1", "i0", "i1", "proof0",
                 "proof1", "neg0", "neg1", "hionly0", "hionly1", "carry0", "carry1", "lo", "hi")

    def __init__(self) -> None:
        self.n = 0
        self.changes = 0
        self.f0 = self.f1 = self.fproof0 = self.fproof1 = 0
        self.i0 = self.i1 = self.proof0 = self.proof1 = self.neg0 = self.neg1 = 0
        self.hionly0 = self.hionly1 = self.carry0 = self.carry1 = 0
        #: ints stay ints (int32 orders), floats floats (float32 orders)
        self.lo: list[int | float | None] = [None, None, None, None]
        self.hi: list[int | float | None] = [None, None, None, None]

    def to_state(self) -> list[Any]:
        return [self.n, [self.f0, self.f1], [self.fproof0, self.fproof1], [self.i0, self.i1],
                [self.proof0, self.proof1], [self.neg0, self.neg1], self.lo, self.hi,
                self.changes, [self.hionly0, self.hionly1], [self.carry0, self.carry1]]

    @classmethod
    def from_state(cls, s: list[Any]) -> PairStats:
        p = cls()
        n, f, fproof, i, proof, neg, p.lo, p.hi, p.changes, hionly, carry = s
        p.n = n
        p.f0, p.f1 = f
        p.fproof0, p.fproof1 = fproof
        p.i0, p.i1 = i
        p.proof0, p.proof1 = proof
        p.neg0, p.neg1 = neg
        p.hionly0, p.hionly1 = hionly
        p.carry0, p.carry1 = carry
        return p

    def _range(self, k: int, v: int | float) -> None:
        lo, hi = self.lo[k], self.hi[k]
        if lo is None or v < lo:
            self.lo[k] = v
        if hi is None or v > hi:
            self.hi[k] = v

    def decision(self) -> tuple[str, str] | None:
        """``(type, word_order)`` for the pair, or None when it is not a 32-bit value."""
        n = self.n
        if n == 0:
            return None
        need = n - n // 20  # tolerate 5% odd samples (a value read mid-update)
        steady = (self.hionly0 <= 1 + self.changes // 10, self.hionly1 <= 1 + self.changes // 10)
        f, fproof = (self.f0, self.f1), (self.fproof0, self.fproof1)
        floats = [o for o in (0, 1) if f[o] >= need and fproof[o] and steady[o]]
        if floats:
            return "float32", WORD_ORDERS[floats[0]]
        i, proof, carry = (self.i0, self.i1), (self.proof0, self.proof1), (self.carry0, self.carry1)
        ints = [o for o in (0, 1) if i[o] >= need and proof[o] and carry[o] and steady[o]]
        if not ints:
            return None
        o = min(ints, key=lambda k: max(abs(self.lo[2 + k] or 0), abs(self.hi[2 + k] or 0)))
        return ("i32" if (self.neg0, self.neg1)[o] else "u32"), WORD_ORDERS[o]

    def value_range(self, kind: str, order: str) -> tuple[int | float | None, int | float | None]:
        k = (0 if kind == "float32" else 2) + WORD_ORDERS.index(order)
        return self.lo[k], self.hi[k]


def _plausible_float(x: float) -> bool:
    return _FLOAT_MIN <= abs(x) <= _FLOAT_MAX or x == 0.0


def analyse_pairs(pairs: dict[int, PairStats], address: int, values: tuple[int, ...],
                  cap: int, old: tuple[int, ...] | None = None) -> int:
    """Add one sample of consecutive registers starting at ``address`` to the pair evidence.

    ``old`` is the previous read of the same range (same length), when there is one.
    Returns the number of new :class:`PairStats` that could not be created because
    ``pairs`` already holds ``cap`` entries.
    """
    n = len(values)
    if n < 2:
        return 0
    for k in range(n - 1):  # a range polled for long has every pair sampled enough: done
        p = pairs.get(address + k)
        if p is None or p.n < MAX_PAIR_SAMPLES:
            break
    else:
        return 0
    words, even, odd = _structs(n)
    be = words.pack(*values)
    rev = words.pack(*values[::-1])
    # float32 of pair k, big word order: at byte 4*(k//2) of ``be`` for even k, 2 + 4*(k//2)
    # for odd k; little word order: pair n-2-k of the reversed words, likewise.
    fe, fo = even.unpack_from(be, 0), odd.unpack_from(be, 2)
    re, ro = even.unpack_from(rev, 0), odd.unpack_from(rev, 2)
    dropped = 0
    for k in range(n - 1):
        w0, w1 = values[k], values[k + 1]
        if not (w0 or w1):
            continue
        p = pairs.get(address + k)
        if p is None:
            if len(pairs) >= cap:
                dropped += 1
                continue
            pairs[address + k] = p = PairStats()
        elif p.n >= MAX_PAIR_SAMPLES:
            continue
        j = n - 2 - k
        fb = fo[k >> 1] if k & 1 else fe[k >> 1]
        fl = ro[j >> 1] if j & 1 else re[j >> 1]
        ib = w0 << 16 | w1
        if ib >= 0x80000000:
            ib -= 0x100000000
        il = w1 << 16 | w0
        if il >= 0x80000000:
            il -= 0x100000000
        _sample(p, fb, fl, ib, il, w0, w1)
        if old is not None:
            _change(p, old[k], old[k + 1], w0, w1)
    return dropped


_STRUCTS: dict[int, tuple[struct.Struct, struct.Struct, struct.Struct]] = {}


def _structs(n: int) -> tuple[struct.Struct, struct.Struct, struct.Struct]:
    """For ``n`` registers: n big-endian words; the float32s at even and at odd offsets."""
    got = _STRUCTS.get(n)
    if got is None:
        got = _STRUCTS[n] = (struct.Struct(f">{n}H"), struct.Struct(f">{n // 2}f"),
                             struct.Struct(f">{(n - 1) // 2}f"))
    return got


def _sample(p: PairStats, fb: float, fl: float, ib: int, il: int, w0: int, w1: int) -> None:
    # Written out per word order (0: big, high word w0; 1: little, high word w1): this runs
    # for every pair of every sampled read, and a loop over a tuple of tuples costs more.
    p.n += 1
    if _plausible_float(fb):
        p.f0 += 1
        p._range(0, fb)
        if w1:
            p.fproof0 += 1
    if _plausible_float(fl):
        p.f1 += 1
        p._range(1, fl)
        if w0:
            p.fproof1 += 1
    if -_INT_MAX <= ib <= _INT_MAX:
        p.i0 += 1
        p._range(2, ib)
        if _proof(w0, w1):
            p.proof0 += 1
        if ib < 0:
            p.neg0 += 1
    if -_INT_MAX <= il <= _INT_MAX:
        p.i1 += 1
        p._range(3, il)
        if _proof(w1, w0):
            p.proof1 += 1
        if il < 0:
            p.neg1 += 1


def _proof(high: int, low: int) -> bool:
    """Whether an int sample needs both halves (see the module docstring)."""
    return high != 0 and high != 0xFFFF and low >= 0x100


def _change(p: PairStats, o0: int, o1: int, w0: int, w1: int) -> None:
    d0, d1 = o0 != w0, o1 != w1
    if not (d0 or d1):
        return
    p.changes += 1
    # order 0 (big): high word w0; order 1 (little): high word w1
    if d0 and not d1:
        p.hionly0 += 1
    elif d1 and not d0:
        p.hionly1 += 1
    else:  # both words changed: a carry when the high word moved by one
        if (w0 - o0) & 0xFFFF in (1, 0xFFFF):
            p.carry0 += 1
        if (w1 - o1) & 0xFFFF in (1, 0xFFFF):
            p.carry1 += 1


def guess_single(umin: int, umax: int, smin: int, smax: int) -> str:
    """Type of one register from its unsigned and signed value ranges."""
    if umin >= 0 and umax <= 1 and umax == 1:
        return "bool"
    if umax >= 0x8000 and -0x4000 <= smin and smax < 0x4000:
        return "i16"  # values with the top bit set that are small as signed numbers
    return "u16"


def choose_pairs(decisions: dict[int, tuple[str, str]]) -> dict[int, tuple[str, str]]:
    """Non-overlapping pairs with the most evidence (floats weigh more than integers).

    ``decisions`` maps a first address to its pair decision; the result keeps a
    subset where no two pairs share a register.
    """
    chosen: dict[int, tuple[str, str]] = {}
    addrs = sorted(decisions)
    i = 0
    while i < len(addrs):
        # a run of candidates each overlapping the next: solve it by dynamic programming
        j = i
        while j + 1 < len(addrs) and addrs[j + 1] == addrs[j] + 1:
            j += 1
        chosen.update(_best_run(addrs[i: j + 1], decisions))
        i = j + 1
    return chosen


def _best_run(run: list[int], decisions: dict[int, tuple[str, str]]) -> dict[int, tuple[str, str]]:
    weight = {a: (2.0 if decisions[a][0] == "float32" else 1.5) for a in run}
    best: list[tuple[float, tuple[int, ...]]] = [(0.0, ())]  # best[k]: over run[:k]
    for k, a in enumerate(run):
        skip = best[k]
        take_prev = best[k - 1] if k >= 1 else (0.0, ())
        take = (take_prev[0] + weight[a], (*take_prev[1], a))
        best.append(take if take[0] > skip[0] else skip)
    return {a: decisions[a] for a in best[-1][1]}


def interpret(kind: str, order: str, words: tuple[int, ...]) -> float | int | None:
    """The value of one or two registers read as ``kind`` (``order`` for 32-bit kinds)."""
    if not words:
        return None
    if kind in ("bool", "u16"):
        return words[0]
    if kind == "i16":
        return words[0] - 0x10000 if words[0] >= 0x8000 else words[0]
    if len(words) < 2:
        return None
    hi, lo = (words[0], words[1]) if order == "big" else (words[1], words[0])
    raw = struct.pack(">HH", hi, lo)
    code = {"float32": ">f", "i32": ">i", "u32": ">I"}.get(kind)
    return struct.unpack(code, raw)[0] if code else None
