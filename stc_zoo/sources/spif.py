"""The SPIF / aestream event word format: 32-bit little-endian words, one per event,

    bit 31: 0 = a 32-bit timestamp word (microseconds) follows, 1 = none;
    bits 30..16: x; bit 15: polarity; bits 14..0: y.

Decoded with numpy: a datagram whose event words all carry timestamps (or none does) is split in
one step; a mixed one is walked word by word. Timestamps wrap after 2**32 us (71.6 min): ``Decoder``
unwraps them across datagrams.
"""

from __future__ import annotations

import numpy as np

from ..data.events import EVENT_DTYPE

NO_TIMESTAMP = np.uint32(1 << 31)
WRAP = 1 << 32


def encode(events: np.ndarray, timestamps: bool = True) -> bytes:
    """Words for ``events`` (x, y < 2**15); ``timestamps=False`` sends none (the receiver stamps them)."""
    x = events["x"].astype(np.uint32)
    y = events["y"].astype(np.uint32)
    p = events["p"].astype(np.uint32)
    words = (x << 16) | (p << 15) | y
    if not timestamps:
        return (words | NO_TIMESTAMP).astype("<u4").tobytes()
    out = np.empty(2 * len(events), dtype="<u4")
    out[0::2] = words
    out[1::2] = (events["t"].astype(np.int64) % WRAP).astype(np.uint32)
    return out.tobytes()


class Decoder:
    """Datagrams -> events, with timestamps unwrapped across calls."""

    def __init__(self):
        self._offset = 0
        self._last_raw: int | None = None

    def decode(self, data: bytes, arrival_us: int) -> tuple[np.ndarray, int] | None:
        """``(events, how many were stamped with arrival_us)``, or None for a malformed datagram (not a
        whole number of words, or an event word whose timestamp word is missing)."""
        if len(data) % 4:
            return None
        words = np.frombuffer(data, dtype="<u4")
        if len(words) % 2 == 0 and len(words) and words[0::2].max() < NO_TIMESTAMP:
            return self._all_stamped(words[0::2], words[1::2]), 0  # what senders send: a few array operations
        flags = (words & NO_TIMESTAMP) != 0
        if len(words) % 2 == 0 and not flags[0::2].any():  # every event carries its timestamp
            events, raw = words[0::2], words[1::2].astype(np.int64)
            stamped = np.zeros(len(events), dtype=bool)
        elif flags.all():  # none does
            events, raw, stamped = words, np.zeros(len(words), np.int64), np.ones(len(words), dtype=bool)
        else:
            parsed = _walk(words, flags)
            if parsed is None:
                return None
            events, raw, stamped = parsed
        out = np.empty(len(events), dtype=EVENT_DTYPE)
        out["x"] = (events >> 16) & 0x7FFF
        out["y"] = events & 0x7FFF
        out["p"] = (events >> 15) & 1
        out["t"] = np.where(stamped, arrival_us, self._unwrap(raw, stamped))
        return out, int(stamped.sum())

    def _all_stamped(self, events: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Events whose words all carry timestamps (x < 2**15 since bit 31 is clear)."""
        out = np.empty(len(events), dtype=EVENT_DTYPE)
        out["x"] = events >> 16
        out["y"] = events & 0x7FFF
        out["p"] = (events >> 15) & 1
        r = raw.astype(np.int64)
        last = int(r[0]) if self._last_raw is None else self._last_raw
        if r[0] >= last - WRAP // 2 and (len(r) < 2 or np.diff(r).min() >= -(WRAP // 2)):  # no wrap inside
            out["t"] = r + self._offset if self._offset else r
            self._last_raw = int(r[-1])
        else:
            out["t"] = self._unwrap(r, np.zeros(len(r), dtype=bool))
        return out

    def _unwrap(self, raw: np.ndarray, stamped: np.ndarray) -> np.ndarray:
        """Sender timestamps on a continuous axis: a drop of more than half the range is a wrap."""
        sent = ~stamped
        r = raw[sent]
        if not len(r):
            return raw
        before = np.concatenate([[r[0] if self._last_raw is None else self._last_raw], r[:-1]])
        wraps = np.cumsum(r < before - WRAP // 2)
        t = raw.copy()
        t[sent] = r + self._offset + wraps * WRAP
        self._offset += int(wraps[-1]) * WRAP
        self._last_raw = int(r[-1])
        return t


def _walk(words: np.ndarray, flags: np.ndarray):
    """Word by word, for a datagram mixing events with and without timestamps."""
    events, raw, stamped = [], [], []
    i = 0
    while i < len(words):
        events.append(words[i])
        if flags[i]:
            raw.append(0)
            stamped.append(True)
            i += 1
        elif i + 1 < len(words):
            raw.append(int(words[i + 1]))
            stamped.append(False)
            i += 2
        else:
            return None
    return (np.array(events, dtype=np.uint32), np.array(raw, dtype=np.int64), np.array(stamped, dtype=bool))
