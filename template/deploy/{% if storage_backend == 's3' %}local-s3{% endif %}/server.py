"""An S3-compatible server on this machine: moto's, in memory, with the bucket created.

`make dev` and `make serve` run the service under it, so development needs no S3 of its
own: the server starts first, creates the bucket, runs the command after `--` and stops
when the command ends. Without a command it serves until SIGTERM or SIGINT (as a
container's entry point). Objects live in memory and are gone when it stops, and it
accepts any credentials: for development and for trying the stack out, never for files
you keep.

    python deploy/local-s3/server.py --port 9000 --bucket uploads -- uvicorn ...
    python deploy/local-s3/server.py --host 0.0.0.0 --port 9000 --bucket uploads

Exit status: the command's, or 0 after a signal; 2 when the port is taken.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import subprocess
import sys
import threading
from types import FrameType

import boto3
from moto.server import ThreadedMotoServer

# The default region of the service's settings (STORAGE_S3_REGION).
DEFAULT_REGION = "us-east-1"


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="port to bind (9000)")
    parser.add_argument("--bucket", required=True, help="bucket to create on start")
    parser.add_argument("--region", default=DEFAULT_REGION, help=f"its region ({DEFAULT_REGION})")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND to run under it")
    arguments = parser.parse_args(argv)
    if arguments.command[:1] == ["--"]:
        arguments.command = arguments.command[1:]
    return arguments


def port_is_free(host: str, port: int) -> bool:
    """Moto's server thread would fail to bind without telling `start()`: ask first."""
    try:
        with socket.create_server((host, port)):
            return True
    except OSError:
        return False


def create_bucket(endpoint: str, bucket: str, region: str) -> None:
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        # Moto checks no credentials; boto3 only needs some to sign with.
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106
    )
    if region == DEFAULT_REGION:
        client.create_bucket(Bucket=bucket)
    else:
        client.create_bucket(
            Bucket=bucket,
            CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
        )


def run_command(command: list[str]) -> int:
    """Run `command` to its end. Ctrl-C reaches it from the terminal (it is in this
    process group); SIGTERM is passed on to it."""
    child = subprocess.Popen(command)  # noqa: S603 (the caller's own command line)

    def pass_on(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    signal.signal(signal.SIGINT, lambda _signum, _frame: None)
    signal.signal(signal.SIGTERM, pass_on)
    return child.wait()


def wait_for_a_stop_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    stop.wait()


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    if not port_is_free(arguments.host, arguments.port):
        print(
            f"S3 server: port {arguments.port} is taken; choose another with"
            " `make dev S3_DEV_PORT=<port>`",
            file=sys.stderr,
        )
        return 2
    # One line per S3 request would drown the service's own log.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=arguments.host, port=arguments.port, verbose=False)
    server.start()
    try:
        host = "127.0.0.1" if arguments.host == "0.0.0.0" else arguments.host  # noqa: S104
        create_bucket(f"http://{host}:{arguments.port}", arguments.bucket, arguments.region)
        print(
            f"S3 server (moto, in memory) on http://{host}:{arguments.port},"
            f" bucket {arguments.bucket!r}",
            file=sys.stderr,
            flush=True,
        )
        if arguments.command:
            return run_command(arguments.command)
        wait_for_a_stop_signal()
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
