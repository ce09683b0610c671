"""Pure parts of the run rollups (docs/monitoring.md): latency histograms and which
stretches of a window are read from rollups and which from raw runs.

Histogram: durations are whole milliseconds. Bucket 0 holds 0 ms; bucket i >= 1 holds
the integers from BOUNDS[i] up to BOUNDS[i + 1] - 1, where the bounds are 2^(k/4)
rounded up (four buckets an octave, from 1 ms to 2^20 ms, about 17.5 minutes); the
last bucket holds everything from 2^20 ms up. A bucket's value is the geometric mean
of the smallest and largest integer it holds, so it is within a factor 2^(1/8) of every
value in it. A percentile is interpolated between the two closest ranks as PostgreSQL's
percentile_cont does, with each rank's value replaced by its bucket's value: a mix of
values each within that factor is within it too, so the estimate is within
REL_ERROR (9.05 %) of the exact percentile, below the last bucket.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

TOP_MS = 2**20
BOUNDS: tuple[int, ...] = (0, *sorted({math.ceil(2 ** (k / 4)) for k in range(0, 81)}))
BUCKETS = len(BOUNDS)
REL_ERROR = 2 ** (1 / 8) - 1  # the bound on a percentile's relative error, below TOP_MS

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def bucket_of(ms: int) -> int:
    """The bucket a whole number of milliseconds falls in (negative values: bucket 0)."""
    return max(bisect_right(BOUNDS, ms) - 1, 0)


def bucket_value(i: int) -> float:
    """The value a bucket stands for (its lower bound for the open-ended last one)."""
    if i == 0:
        return 0.0
    if i == BUCKETS - 1:
        return float(BOUNDS[i])
    low, high = BOUNDS[i], BOUNDS[i + 1] - 1
    return math.sqrt(low * high)


def histogram(values: Iterable[int]) -> list[int]:
    counts = [0] * BUCKETS
    for v in values:
        counts[bucket_of(v)] += 1
    return counts


def merge(into: list[int], other: Sequence[int]) -> None:
    for i, n in enumerate(other):
        into[i] += n


def percentile(counts: Sequence[int], fraction: float) -> float | None:
    """percentile_cont(fraction) of the values a histogram counts, each read as its
    bucket's value (within REL_ERROR of the exact one)."""
    n = sum(counts)
    if n == 0:
        return None
    position = fraction * (n - 1)
    low_rank, high_rank = math.floor(position), math.ceil(position)
    low, high = _value_at(counts, low_rank), _value_at(counts, high_rank)
    return low + (high - low) * (position - low_rank)


def _value_at(counts: Sequence[int], rank: int) -> float:
    seen = 0
    for i, n in enumerate(counts):
        seen += n
        if seen > rank:
            return bucket_value(i)
    raise ValueError("rank beyond the histogram")


def floor_minute(when: datetime) -> datetime:
    return when.replace(second=0, microsecond=0)


def ceil_minute(when: datetime) -> datetime:
    floor = floor_minute(when)
    return floor if floor == when else floor + MINUTE


def floor_hour(when: datetime) -> datetime:
    return when.replace(minute=0, second=0, microsecond=0)


def ceil_hour(when: datetime) -> datetime:
    floor = floor_hour(when)
    return floor if floor == when else floor + HOUR


Span = tuple[datetime, datetime]  # [start, end)


@dataclass(frozen=True)
class Plan:
    """A window [since, until) cut into stretches read raw, from minute rollups and from
    hour rollups; together they cover it exactly once."""

    raw: tuple[Span, ...]
    minutes: tuple[Span, ...]
    hours: tuple[Span, ...]


def plan(
    since: datetime,
    until: datetime,
    *,
    minutes_until: datetime | None,
    hours_until: datetime | None,
    use_hours: bool = True,
) -> Plan:
    """Minute rollups exist for every minute before `minutes_until`, hour rollups for
    every hour before `hours_until` (both None: no rollups yet). The partial minutes at
    both ends, and whatever the rollups do not reach yet, are read raw."""
    a = ceil_minute(since)
    b = min(minutes_until, floor_minute(until)) if minutes_until else a
    if b <= a:
        return Plan(raw=((since, until),), minutes=(), hours=())
    raw = tuple(s for s in ((since, a), (b, until)) if s[0] < s[1])
    h0, h1 = ceil_hour(a), floor_hour(b)
    if hours_until is not None:
        h1 = min(h1, hours_until)
    if not use_hours or h1 <= h0:
        return Plan(raw=raw, minutes=((a, b),), hours=())
    minutes = tuple(s for s in ((a, h0), (h1, b)) if s[0] < s[1])
    return Plan(raw=raw, minutes=minutes, hours=((h0, h1),))
