"""Type guesses: bool/u16/i16 per register, float32 and 32-bit integers with their word order."""

from __future__ import annotations

import math
import struct

from hypothesis import given
from hypothesis import strategies as st

from otsentry.agent.inventory._types import (
    PairStats,
    analyse_pairs,
    choose_pairs,
    guess_single,
    interpret,
)


def words(value: float | int, kind: str, order: str) -> tuple[int, int]:
    """The two registers holding ``value`` as ``kind`` in ``order`` (packed with struct)."""
    code = {"float32": ">f", "i32": ">i", "u32": ">I"}[kind]
    hi, lo = struct.unpack(">HH", struct.pack(code, value))
    return (hi, lo) if order == "big" else (lo, hi)


def decide(samples: list[tuple[int, ...]]) -> dict[int, tuple[str, str]]:
    pairs: dict[int, PairStats] = {}
    old = None
    for s in samples:
        analyse_pairs(pairs, 0, s, 1000, old if old is not None and len(old) == len(s) else None)
        old = s
    return choose_pairs({a: d for a, p in pairs.items() if (d := p.decision()) is not None})


class TestPairs:
    def test_floats_both_orders_int32_and_u16(self) -> None:
        """A block of float32 (big, little), i32, u16 registers is split and typed as packed."""
        samples = []
        for k in range(12):
            temp, flow_rate, count = 21.37 + k * 0.11, -1234.567 + k, -100_000 - 9_000 * k
            samples.append((*words(temp, "float32", "big"), *words(flow_rate, "float32", "little"),
                            *words(count, "i32", "big"), 42 + k, 7))
        assert decide(samples) == {0: ("float32", "big"), 2: ("float32", "little"),
                                   4: ("i32", "big")}

    def test_value_next_to_zero_is_not_float(self) -> None:
        """A changing u16 beside a zero register is not taken for a float or an u32."""
        assert decide([(0, 13050 + k) for k in range(10)]) == {}
        assert decide([(16672 + k, 0) for k in range(10)]) == {}

    def test_positive_u32_little(self) -> None:
        """A large positive counter in CDAB order is an u32, little, once it carried."""
        samples = [words(3_000_000 + 9_770 * k, "u32", "little") for k in range(12)]
        assert decide(samples) == {0: ("u32", "little")}
        assert decide(samples[:2]) == {}  # no carry seen yet: two u16

    def test_adjacent_u16_are_not_32_bit(self) -> None:
        """Two u16, one changing, one constant, are not taken for a 32-bit value."""
        assert decide([(1000 + 3 * k, 4242) for k in range(20)]) == {}
        assert decide([(4242, 1000 + 3 * k) for k in range(20)]) == {}

    @given(st.lists(st.lists(st.integers(0, 0xFFFF), min_size=0, max_size=20), max_size=10))
    def test_any_registers_give_valid_guesses(self, blocks: list[list[int]]) -> None:
        """Any register values give non-overlapping pairs of known types, never an error."""
        chosen = decide([tuple(b) for b in blocks if b])
        addrs = sorted(chosen)
        assert all(b - a >= 2 for a, b in zip(addrs, addrs[1:]))
        assert all(k in ("float32", "i32", "u32") and o in ("big", "little")
                   for k, o in chosen.values())


class TestInterpret:
    @given(st.floats(width=32, allow_nan=False), st.sampled_from(["big", "little"]))
    def test_float_round_trip(self, x: float, order: str) -> None:
        """interpret() reads back any float32 packed in either word order."""
        assert interpret("float32", order, words(x, "float32", order)) == x

    @given(st.integers(-2**31, 2**31 - 1), st.sampled_from(["big", "little"]))
    def test_int_round_trip(self, v: int, order: str) -> None:
        """interpret() reads back any i32 packed in either word order."""
        assert interpret("i32", order, words(v, "i32", order)) == v

    def test_sixteen_bit(self) -> None:
        """u16 and bool read as they are; i16 is two's complement."""
        assert interpret("u16", "big", (0xFFFF,)) == 0xFFFF
        assert interpret("i16", "big", (0xFFFF,)) == -1 and interpret("bool", "big", (1,)) == 1
        assert interpret("float32", "big", (1,)) is None


class TestSingle:
    def test_guesses(self) -> None:
        """0/1 is bool, values around zero with the top bit set are i16, others u16."""
        assert guess_single(0, 1, 0, 1) == "bool"
        assert guess_single(1, 0xFFFF, -1, 1) == "i16"  # -1 and 1
        assert guess_single(0xFF9C, 0xFF9C, -100, -100) == "i16"
        assert guess_single(100, 40000, -25536, 100) == "u16"
        assert guess_single(0, 0, 0, 0) == "u16"
        assert not math.isnan(0.0)
