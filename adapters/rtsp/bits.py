"""The one bit reader of the codec parsers (H.264 and H.265 parameter sets): big-endian bits,
Exp-Golomb codes (ITU-T H.264 9.1, H.265 9.2), and the emulation-prevention bytes NAL units
carry. Everything is bounded: reading past the end, or a code longer than 32 bits, is a
ValueError, never an IndexError or a huge integer."""

from __future__ import annotations

import re

_EMULATION_PREVENTION = re.compile(rb"\x00\x00\x03")


def unescape_rbsp(nal: bytes) -> bytes:
    """A NAL unit's payload without its emulation-prevention bytes (00 00 03 -> 00 00)."""
    return _EMULATION_PREVENTION.sub(b"\x00\x00", nal)


class BitReader:
    def __init__(self, data: bytes, what: str = "parameter set") -> None:
        self.data = data
        self.pos = 0  # in bits
        self.what = what

    @property
    def left(self) -> int:
        """Bits not read yet."""
        return len(self.data) * 8 - self.pos

    def u(self, n: int) -> int:
        """n bits as an unsigned integer."""
        if n > self.left:
            raise ValueError(f"{self.what} truncated")
        value = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]
            value = (value << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def skip(self, n: int) -> None:
        if n > self.left:
            raise ValueError(f"{self.what} truncated")
        self.pos += n

    def ue(self) -> int:
        """ue(v): unsigned Exp-Golomb."""
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError(f"{self.what}: Exp-Golomb code too long")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        """se(v): signed Exp-Golomb."""
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)
