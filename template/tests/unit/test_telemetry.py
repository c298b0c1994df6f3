"""What the service asks of FastAPI's built-in OpenTelemetry (the export itself is tested
end to end in tests/e2e/test_opentelemetry.py)."""

import pytest

from app.core import telemetry
from app.core.telemetry import telemetry_config, untraced
from tests.helpers import build_settings


def test_off_disables_every_signal() -> None:
    config = telemetry_config(build_settings(database_url="sqlite+aiosqlite://"))

    assert config == {"tracing": False, "metrics": False, "logs": False}


def test_on_exports_from_the_environment_and_skips_probes() -> None:
    settings = build_settings(database_url="sqlite+aiosqlite://", opentelemetry_enabled=True)

    config = telemetry_config(settings)

    assert config["auto_configure"] is True
    assert config["exclude"] is untraced


@pytest.mark.parametrize(
    ("path", "skipped"),
    [
        ("/health/live", True),
        ("/health/ready", True),
        ("/metrics", True),
        ("/api/v1/users/me", False),
        ("/api/v1/health-records", False),
    ],
)
def test_probes_and_scrapes_are_not_traced(path: str, skipped: bool) -> None:
    assert untraced({"type": "http", "path": path}) is skipped


def test_on_without_the_sdk_fails_at_start_up_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As in an environment installed without the `opentelemetry` extra.
    monkeypatch.setattr(telemetry, "find_spec", lambda name: None)
    settings = build_settings(database_url="sqlite+aiosqlite://", opentelemetry_enabled=True)

    with pytest.raises(RuntimeError, match="`opentelemetry` extra"):
        telemetry_config(settings)
