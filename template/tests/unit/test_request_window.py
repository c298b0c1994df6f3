"""The sliding-window estimate behind the general rate limits (pure arithmetic)."""

import pytest

from app.core.rate_limit import RateLimitStatus, RequestWindow, rate_limit, route_limit

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

    declared = route_limit(endpoint)
    assert declared is not None
    assert declared.limit == "5/hour"
    assert "Rate limit: 5/hour per caller." in (endpoint.__doc__ or "")
    assert route_limit(test_headers) is None
    with pytest.raises(ValueError, match="rate limit"):
        rate_limit("often")
