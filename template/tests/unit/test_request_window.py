"""The sliding-window estimate behind the general rate limits (pure arithmetic)."""

import pytest

from app.core.rate_limit import (
    RateLimitStatus,
    RequestWindow,
    RouteLimit,
    rate_limit,
    route_limit,
)

MINUTE_START = 1_800_000_000 - 1_800_000_000 % 60  # a timestamp on a minute boundary


def window(elapsed: float, limit: str = "10/minute") -> RequestWindow:
    return RequestWindow.at(limit, "user:42", MINUTE_START + elapsed)


def test_keys_name_the_window_length_the_caller_and_the_window() -> None:
    current = window(15)
    index = MINUTE_START // 60

    assert current.current_key == f"ratelimit:60:user:42:{index}"
    assert current.previous_key == f"ratelimit:60:user:42:{index - 1}"
    assert current.ttl_seconds == 120
    assert window(59.9).current_key == current.current_key
    assert window(60).previous_key == current.current_key


def test_within_the_limit_the_remaining_count_and_the_reset_are_reported() -> None:
    assert window(15).status(previous=0, current=4) == RateLimitStatus(10, 6, 45)
    # Half a second before the window ends: the reset rounds up to one second.
    assert window(59.5).status(previous=0, current=1) == RateLimitStatus(10, 9, 1)


def test_the_previous_window_weighs_by_how_much_of_it_still_overlaps() -> None:
    # 15 s in: the last 45 s of the previous window still count, 3/4 of its 8 requests.
    assert window(15).status(previous=8, current=3) == RateLimitStatus(10, 1, 45)
    assert window(15).status(previous=8, current=5).retry_after_seconds is not None
    # 45 s in only a quarter of it counts.
    assert window(45).status(previous=8, current=5).remaining == 3


def test_a_burst_at_the_window_edge_cannot_double_the_limit() -> None:
    assert window(1).status(previous=10, current=1).retry_after_seconds is not None


def test_retry_after_is_when_one_more_request_fits() -> None:
    # 8 here + 1 more leave room for 1 of the previous window's 8, which weigh 6 now:
    # their weight falls to 1/8 after 60 * (0.75 - 0.125) = 37.5 s.
    assert window(15).status(previous=8, current=8).retry_after_seconds == 38
    # This window alone is over: wait for its end (45 s), then until 11 * (1 - t/60)
    # drops to 9, 60 * 2/11 = 10.9 s later.
    assert window(15).status(previous=0, current=11).retry_after_seconds == 56
    # 0.1 s before the window ends, its 100 requests weigh 99 after 0.6 s more: 1 s.
    assert window(59.9, "100/minute").status(previous=1, current=100) == RateLimitStatus(
        100, 0, 1, 1
    )


@pytest.mark.parametrize("elapsed", [0.5, 15, 30, 44.5, 59.5])
@pytest.mark.parametrize(("previous", "current"), [(8, 8), (10, 1), (0, 11), (20, 10), (3, 30)])
def test_when_refused_reset_and_retry_after_agree_and_a_retry_then_fits(
    elapsed: float, previous: int, current: int
) -> None:
    status = window(elapsed).status(previous, current)
    if status.retry_after_seconds is None:
        return
    assert status.reset_seconds == status.retry_after_seconds
    # The caller waits that long, sending nothing, then retries: it is let through.
    later = elapsed + status.retry_after_seconds
    windows_on = int(later // 60)
    counts = [(previous, current + 1), (current, 1), (0, 1)][min(windows_on, 2)]
    assert window(later % 60).status(*counts).retry_after_seconds is None


def test_headers() -> None:
    assert RateLimitStatus(10, 6, 45).headers() == {
        "RateLimit-Limit": "10",
        "RateLimit-Remaining": "6",
        "RateLimit-Reset": "45",
    }


def test_a_route_limit_is_declared_on_the_endpoint_and_checked_at_import() -> None:
    @rate_limit("5/hour")
    async def endpoint() -> None:
        """Do something."""

    @rate_limit("5/hour")
    async def other_endpoint() -> None:
        pass

    declared = route_limit(endpoint)
    assert declared is not None
    assert declared.limit == "5/hour"
    # Each route counts in a bucket of its own, even with the same limit.
    assert declared.bucket == endpoint.__qualname__
    assert route_limit(other_endpoint) == RouteLimit("5/hour", other_endpoint.__qualname__)
    # The limit is added to the description OpenAPI shows, or is all of it.
    assert endpoint.__doc__ == "Do something.\n\nRate limit: 5/hour per caller."
    assert other_endpoint.__doc__ == "Rate limit: 5/hour per caller."
    assert route_limit(test_headers) is None
    with pytest.raises(ValueError, match="rate limit"):
        rate_limit("often")
