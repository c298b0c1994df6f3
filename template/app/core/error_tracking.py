"""Optional error tracking with Sentry, switched on by SENTRY_DSN.

The SDK is imported only when a DSN is set, so services that do not use Sentry need not
install it (it is the `sentry` extra: `uv sync --extra sentry`, or EXTRAS=sentry for the
container image). Unhandled exceptions reach Sentry through its logging integration:
the request middleware logs each one with its traceback and request id.
"""

from app.core.config import Settings


def init_error_tracking(settings: Settings) -> None:
    if settings.sentry_dsn is None:
        return
    import sentry_sdk  # lazily, on purpose: see the module docstring

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.environment,
        send_default_pii=False,  # no request bodies, cookies or user IPs leave the service
    )
