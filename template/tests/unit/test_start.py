"""The image's entrypoint refuses settings that cannot run before any server starts."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from starlette.types import Receive, Scope, Send

from app import start
from app.core.config import get_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def run_start(*command: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  (our own interpreter, fixed code)
        [sys.executable, "-m", "app.start", *command],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
        timeout=60,
    )


def test_refused_settings_exit_78_before_the_command_runs() -> None:
    """With uvicorn's workers the refusal once repeated forever and the container ran on."""
    result = run_start("sh", "-c", "echo ran", ENVIRONMENT="production", SECRET_KEY="short")

    assert result.returncode == 78
    assert "ran" not in result.stdout
    (line,) = result.stdout.splitlines()
    refusal = json.loads(line)
    assert refusal["event"] == "settings_refused"
    assert "SECRET_KEY" in refusal["message"]


def test_settings_that_run_hand_over_to_the_command() -> None:
    result = run_start("sh", "-c", "echo ran; exit 3")

    assert (result.returncode, result.stdout) == (3, "ran\n")


def test_no_command_is_a_usage_error() -> None:
    assert run_start().returncode == 64


def test_the_refusal_is_one_json_line_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", "short")
    get_settings.cache_clear()
    try:
        assert start.main(["true"]) == start.EX_CONFIG
    finally:
        get_settings.cache_clear()

    assert json.loads(capsys.readouterr().out)["level"] == "critical"
    assert start.main([]) == 64


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


async def body_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """The app the server test runs: it answers once the whole body has arrived, so a
    request whose body is half sent stays in flight. (The service's own app needs its
    storage and database; what is tested here is the entrypoint's server.)"""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def test_a_stopping_server_with_workers_refuses_new_connections_at_once() -> None:
    """SIGTERM to the image's command with two workers: while a request in flight
    finishes, a new connection is refused (a proxy passes it to another replica), not
    accepted by a socket no worker reads (uvicorn's supervisor held it open; the proxy
    then got a reset for a request it had sent, a 502 in every rollout)."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key != "WEB_CONCURRENCY"}
    server = subprocess.Popen(  # noqa: S603  (our own interpreter, fixed arguments)
        [
            *(sys.executable, "-m", "app.start", "uvicorn", "tests.unit.test_start:body_echo"),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "2"),
            *("--timeout-graceful-shutdown", "20", "--no-access-log"),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while _refuses_connections(port):
            assert server.poll() is None, "exited before serving"
            assert time.monotonic() < deadline, "not serving after 60 s"
            time.sleep(0.2)
        # A request in flight: its body half sent, so a worker waits on the rest.
        body = b"x" * 100
        in_flight = socket.create_connection(("127.0.0.1", port), timeout=30)
        in_flight.sendall(
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n" + body[:10]
        )
        time.sleep(1.0)
        server.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        while not _refuses_connections(port):
            # The supervisor checks for signals every 0.5 s, the workers every 0.1 s.
            assert time.monotonic() - stopping < 5, "still accepting 5 s after SIGTERM"
            time.sleep(0.1)

        in_flight.sendall(body[10:])
        answer = b""
        while chunk := in_flight.recv(65536):  # until the server closes the connection
            answer += chunk
        in_flight.close()
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        assert b"\r\n100\r\n" in answer  # the whole body arrived (chunked)
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
        server.wait()
