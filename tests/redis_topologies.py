"""Real Redis topologies on loopback, started and stopped by the tests that use them:
a Redis Cluster of three primaries, and a primary with a replica watched by three
sentinels. Debian's redis-server runs both (a sentinel is `redis-server --sentinel`).

Every process listens on 127.0.0.1 only, keeps nothing on disk, and is stopped (and its
directory removed) when the context manager that started it ends, whatever the outcome.
"""

from __future__ import annotations

import functools
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SERVICE_NAME = "primary"  # the name the sentinels monitor the primary under
# The reasons the generated tests that test one Redis server give when they skip on a
# Cluster or a Sentinel group (a proxy before the server, its connections counted).
ONE_REDIS_SERVER_ONLY = frozenset(
    {
        "a proxy stands in front of one Redis server, not a Sentinel group or Cluster",
        "counts one server's connections or scripts: a Redis Cluster has several",
    }
)
# And on a Sentinel group, the one that needs a password refused by the server itself.
SENTINEL_SKIPS = ONE_REDIS_SERVER_ONLY | {
    "redis-py reports sentinels refusing a password as no primary found (a 503)"
}


def redis_server() -> str:
    found = shutil.which("redis-server")
    assert found, "redis-server is not installed (Debian's redis-server package)"
    return found


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, with_bus: bool = False) -> list[int]:
    """`count` free loopback ports; with `with_bus`, each port + 10000 is free as well
    (a Cluster node's bus)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port in ports or (with_bus and (port + 10000 > 65535 or not _free(port + 10000))):
            continue
        ports.append(port)
    return ports


def cli(port: int, *args: str, timeout: float = 10) -> str:
    result = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    return result.stdout + result.stderr


@dataclass
class Process:
    name: str
    port: int
    popen: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the server is gone at once, as when its machine fails."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


@contextmanager
def _server(directory: Path, name: str, port: int, *arguments: str) -> Iterator[Process]:
    """redis-server in the foreground on 127.0.0.1:`port` until the block ends."""
    log = directory / f"{name}.log"
    command = [
        redis_server(),
        *arguments,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(directory),
        "--logfile", str(log),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
    ]  # fmt: skip
    process = Process(name, port, subprocess.Popen(command, stdout=subprocess.DEVNULL), log)
    try:
        deadline = time.monotonic() + 20
        while "PONG" not in cli(port, "ping", timeout=2):
            assert process.popen.poll() is None, f"{name} exited:\n{process.log_text()}"
            assert time.monotonic() < deadline, f"{name} did not start:\n{process.log_text()}"
            time.sleep(0.05)
        yield process
    finally:
        process.stop()


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.1)


@dataclass
class Cluster:
    nodes: list[Process]

    @property
    def url(self) -> str:
        """REDIS_URL's Cluster form, naming every node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)


@contextmanager
def redis_cluster(primaries: int = 3) -> Iterator[Cluster]:
    """A Redis Cluster of `primaries` primaries (no replicas), its slots spread evenly."""
    directory = Path(tempfile.mkdtemp(prefix="redis-cluster-"))
    try:
        with ExitStack() as stack:
            nodes = []
            for number, port in enumerate(free_ports(primaries, with_bus=True)):
                node_dir = directory / f"node-{number}"
                node_dir.mkdir()
                options = ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]
                options += ["--cluster-config-file", str(node_dir / "nodes.conf")]
                server = _server(node_dir, f"cluster-node-{number}", port, *options)
                nodes.append(stack.enter_context(server))
            addresses = [f"127.0.0.1:{node.port}" for node in nodes]
            create = ["--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"]
            created = subprocess.run(
                ["redis-cli", *create],
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
            assert created.returncode == 0, created.stdout + created.stderr
            for node in nodes:
                _wait_for(
                    functools.partial(_cluster_ready, node.port),
                    f"cluster node {node.port} sees the cluster ready",
                )
            yield Cluster(nodes)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class SentinelGroup:
    servers: list[Process]  # the first starts as the primary, the second as its replica
    sentinels: list[Process]
    events: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """REDIS_URL's Sentinel form: every sentinel, then the service name."""
        sentinels = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{sentinels}/{SERVICE_NAME}"

    def primary_port(self) -> int:
        """Where the sentinels say the primary is now."""
        reply = cli(self.sentinels[0].port, "sentinel", "get-master-addr-by-name", SERVICE_NAME)
        return int(reply.split()[1])

    def log_text(self) -> str:
        return "\n".join(
            f"--- {process.name} ---\n{process.log_text()[-3000:]}"
            for process in [*self.servers, *self.sentinels]
        )


@contextmanager
def redis_sentinel_group(down_after_ms: int = 1000) -> Iterator[SentinelGroup]:
    """A primary and one replica, watched by three sentinels (quorum 2) that declare the
    primary down after `down_after_ms` of silence and then promote the replica."""
    directory = Path(tempfile.mkdtemp(prefix="redis-sentinel-"))
    try:
        with ExitStack() as stack:
            primary_port, replica_port, *sentinel_ports = free_ports(5)
            primary = stack.enter_context(_server(directory, "primary", primary_port))
            replica = stack.enter_context(
                _server(
                    directory,
                    "replica",
                    replica_port,
                    "--replicaof",
                    "127.0.0.1",
                    str(primary_port),
                )
            )
            _wait_for(
                lambda: "master_link_status:up" in cli(replica_port, "info", "replication"),
                "the replica is in sync",
            )
            sentinels = []
            for number, port in enumerate(sentinel_ports):
                config = directory / f"sentinel-{number}.conf"  # a sentinel rewrites its file
                config.write_text(
                    f"sentinel monitor {SERVICE_NAME} 127.0.0.1 {primary_port} 2\n"
                    f"sentinel down-after-milliseconds {SERVICE_NAME} {down_after_ms}\n"
                    f"sentinel failover-timeout {SERVICE_NAME} 10000\n"
                    f"sentinel parallel-syncs {SERVICE_NAME} 1\n"
                )
                sentinels.append(
                    stack.enter_context(
                        _server(directory, f"sentinel-{number}", port, str(config), "--sentinel")
                    )
                )
            group = SentinelGroup([primary, replica], sentinels)
            for sentinel in sentinels:
                _wait_for(
                    functools.partial(_sentinel_sees, sentinel.port),
                    f"sentinel {sentinel.port} knows the replica and the other sentinels",
                )
            yield group
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _cluster_ready(port: int) -> bool:
    return "cluster_state:ok" in cli(port, "cluster", "info")


def _sentinel_sees(port: int) -> bool:
    reply = cli(port, "sentinel", "master", SERVICE_NAME).split()
    fields = dict(zip(reply[::2], reply[1::2], strict=False))
    return fields.get("num-slaves") == "1" and fields.get("num-other-sentinels") == "2"
