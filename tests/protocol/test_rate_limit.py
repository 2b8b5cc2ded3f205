"""protocol.rate_limit: the token buckets the API's rate limit and the oracle's proposal gate share."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.rate_limit import TokenBuckets


@settings(max_examples=100, deadline=None)
@given(rate=st.floats(0.5, 50), burst=st.integers(1, 20),
       gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200))
def test_token_bucket_never_allows_more_than_burst_plus_rate_times_time(rate, burst, gaps):
    buckets = TokenBuckets(rate, burst)
    now, allowed = 1_000.0, []
    for gap in gaps:
        now += gap
        wait = buckets.take("client", now)
        if wait == 0.0:
            allowed.append(now)
        else:
            assert 0 < wait <= 1 / rate + 1e-9  # Retry-After never overstates the wait for one token
    for i, start in enumerate(allowed):  # any window [start, end] holds at most burst + rate * (end - start)
        for j in range(i, len(allowed)):
            assert j - i + 1 <= burst + rate * (allowed[j] - start) + 1e-6
    assert buckets.take("someone else", now) == 0.0  # clients do not share buckets
