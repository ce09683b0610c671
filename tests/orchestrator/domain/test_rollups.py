"""The rollups' histograms against exact percentiles, and how a window is cut into raw
and rolled-up stretches."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.domain import rollups
from orchestrator.stats import percentile_cont


def test_every_bucket_holds_integers_within_the_stated_ratio():
    assert rollups.BOUNDS[:5] == (0, 1, 2, 3, 4) and rollups.BOUNDS[-1] == rollups.TOP_MS
    assert list(rollups.BOUNDS) == sorted(set(rollups.BOUNDS))
    for i in range(1, rollups.BUCKETS - 1):
        low, high = rollups.BOUNDS[i], rollups.BOUNDS[i + 1] - 1
        assert rollups.bucket_of(low) == rollups.bucket_of(high) == i
        value = rollups.bucket_value(i)
        assert value / low <= 1 + rollups.REL_ERROR and high / value <= 1 + rollups.REL_ERROR
    assert rollups.bucket_of(0) == 0 and rollups.bucket_value(0) == 0
    assert rollups.bucket_of(10**9) == rollups.BUCKETS - 1


@pytest.mark.parametrize(
    "draw",
    [
        lambda r: int(200 + r.expovariate(1 / 800)),  # response times with a long tail
        lambda r: int(r.lognormvariate(6, 1.5)),
        lambda r: r.randint(0, 30),  # small values: buckets of one integer
        lambda r: r.choice([5, 5000]),  # two far-apart clusters
        lambda r: r.randint(1, rollups.TOP_MS - 1),
    ],
)
@pytest.mark.parametrize("seed", range(8))
def test_percentiles_from_histograms_are_within_the_bound_of_exact_ones(draw, seed):
    r = random.Random(seed)
    values = [draw(r) for _ in range(r.choice([1, 2, 7, 100, 5000]))]
    counts = rollups.histogram(values)
    assert sum(counts) == len(values)
    for fraction in (0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0):
        exact = percentile_cont(values, fraction)
        estimate = rollups.percentile(counts, fraction)
        assert exact is not None and estimate is not None
        if exact == 0:
            assert estimate == 0
        else:
            assert abs(estimate - exact) / exact <= rollups.REL_ERROR + 1e-12


def test_merged_histograms_count_like_one_and_an_empty_one_has_no_percentile():
    a, b = rollups.histogram([1, 2, 300]), rollups.histogram([300, 40000])
    rollups.merge(a, b)
    assert a == rollups.histogram([1, 2, 300, 300, 40000])
    assert rollups.percentile([0] * rollups.BUCKETS, 0.5) is None


T = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _covers(plan: rollups.Plan, since: datetime, until: datetime) -> None:
    spans = sorted([*plan.raw, *plan.minutes, *plan.hours])
    assert spans[0][0] == since and spans[-1][1] == until
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end == start  # no gap, no overlap
    for start, end in plan.minutes:
        assert start.second == end.second == 0 and start.microsecond == 0
    for start, end in plan.hours:
        assert start.minute == end.minute == 0


def test_a_window_is_cut_into_partial_minutes_raw_minutes_and_hours():
    since = T - timedelta(days=1, seconds=-17.5)
    until = T + timedelta(minutes=3, seconds=42)
    plan = rollups.plan(since, until, minutes_until=T, hours_until=T)
    assert plan.raw == ((since, T - timedelta(days=1, minutes=-1)), (T, until))
    assert plan.hours == ((T - timedelta(hours=23), T),)
    assert plan.minutes == ((plan.raw[0][1], plan.hours[0][0]),)
    _covers(plan, since, until)


@pytest.mark.parametrize("seed", range(30))
def test_any_window_is_covered_exactly_once(seed):
    r = random.Random(seed)
    until = T + timedelta(seconds=r.uniform(0, 7200))
    since = until - timedelta(seconds=r.uniform(1, 8 * 86400))
    reached = rollups.floor_minute(until - timedelta(seconds=r.uniform(0, 600)))
    hours = rollups.floor_hour(reached) if r.random() < 0.8 else None
    plan = rollups.plan(
        since, until, minutes_until=reached, hours_until=hours, use_hours=r.random() < 0.7
    )
    _covers(plan, since, until)


def test_no_rollups_yet_means_the_whole_window_is_raw():
    plan = rollups.plan(T - timedelta(hours=1), T, minutes_until=None, hours_until=None)
    assert plan.raw == ((T - timedelta(hours=1), T),) and not plan.minutes and not plan.hours
    old = rollups.plan(
        T - timedelta(hours=1), T, minutes_until=T - timedelta(days=2), hours_until=None
    )
    assert old.raw == ((T - timedelta(hours=1), T),)
