"""Security headers on every response (pure ASGI: no task or copy per request).

What an API's answers need so a browser cannot be talked into misusing them (OWASP
Secure Headers Project; OWASP ASVS 5.0 V3.4):

- `X-Content-Type-Options: nosniff`: a JSON or uploaded body is never run as a script.
- `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'`: an API response
  opened in a tab loads nothing and cannot be framed. The interactive docs pages, which
  load their scripts from a CDN, get no policy (they are off in production by default).
- `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`,
  `Cross-Origin-Opener-Policy: same-origin`, `Cross-Origin-Resource-Policy: same-site`.
- `Strict-Transport-Security` (one year, subdomains) in production, where TLS is required.
- `Cache-Control: no-store` on every API response that does not set its own caching:
  tokens, session secrets and personal data stay out of browser and proxy caches.
"""

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_POLICY = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=31536000; includeSubDomains"
COMMON_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-site"),
)
DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, api_prefix: str, hsts: bool) -> None:
        self.app = app
        self.api_prefix = api_prefix
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        is_api = path.startswith(self.api_prefix)
        is_docs = path.startswith(DOCS_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in COMMON_HEADERS:
                    headers.setdefault(name, value)
                if not is_docs:
                    headers.setdefault("Content-Security-Policy", API_POLICY)
                if self.hsts:
                    headers.setdefault("Strict-Transport-Security", HSTS)
                if is_api:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)
