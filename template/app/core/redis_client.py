"""The Redis that REDIS_URL names, and a client of the right kind for it.

Three forms, the ones the `limits` library reads too (`app.core.rate_limit`):

- one server: any URL redis-py accepts, `redis://[[user]:password@]host[:port][/db]`,
  `rediss://...` (TLS) or `unix:///path/redis.sock?db=0`;
- the primary of a Redis Sentinel group:
  `redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name`, the
  sentinels' addresses and the name they monitor the primary under. The client asks
  them where the primary is, and asks again when a connection fails or the server it
  reaches has become a replica, so a failover needs no change of settings;
- a Redis Cluster: `redis+cluster://[[user]:password@]host:port[,host:port...]`, one or
  more of its nodes; the client learns the others and which slots each one serves.

The user and password are those of the Redis servers, and of the sentinels too.
"""

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from redis import ConnectionPool
from redis.asyncio import Redis, RedisCluster, Sentinel
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from app.core.timeouts import REDIS_ATTEMPTS

Topology = Literal["server", "sentinel", "cluster"]
TOPOLOGIES: dict[str, Topology] = {"redis+sentinel": "sentinel", "redis+cluster": "cluster"}
REDIS_URL_FORMS = (
    "redis://host:6379/0, rediss://host:6380/0, unix:///path/redis.sock?db=0, "
    "redis+sentinel://host:26379,host:26379/service_name or "
    "redis+cluster://host:6379,host:6379"
)
# A client of one server (a Sentinel group's primary is one) or of a Cluster.
RedisClient = Redis | RedisCluster


def retry_on_dead_connection() -> Retry:
    """redis-py's `retry` option for every client of the service: each pooled connection
    dies with a Redis restart (or a failover), and without it each would fail one
    command (a 503) after Redis is back, so a dead one is replaced and the command resent
    (REDIS_ATTEMPTS in all, never after a timeout). A Cluster client takes this as its
    own retry policy (its default retries three times with backoff, past the timeout
    budget); a Sentinel group's primary client asks the sentinels again before the
    resend. redis-py's own default for a client built from a URL resends nothing."""
    return Retry(NoBackoff(), REDIS_ATTEMPTS - 1, supported_errors=(RedisConnectionError,))


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A parsed REDIS_URL."""

    topology: Topology
    url: str
    # Sentinel and Cluster: the addresses given (the sentinels', or some nodes').
    nodes: tuple[tuple[str, int], ...] = ()
    service_name: str = ""  # Sentinel: the name the primary is monitored under
    username: str | None = None
    password: str | None = None


def parse_redis_url(url: str) -> RedisTarget:
    """REDIS_URL as a `RedisTarget`; ValueError names what is wrong. Opens no connection."""
    scheme = url.partition("://")[0].lower()
    topology = TOPOLOGIES.get(scheme)
    if topology is None:
        ConnectionPool.from_url(url)  # parsed as redis-py will parse it: ValueError if not
        return RedisTarget("server", url)
    # The list of host:port pairs may hold bracketed IPv6 addresses, which urlsplit
    # refuses in a netloc since Python 3.13: it parses the rest around a one-host stand-in.
    rest = url.partition("://")[2]
    end = min((index for index in map(rest.find, "/?#") if index >= 0), default=len(rest))
    userinfo, at, locations = rest[:end].rpartition("@")
    parts = urlsplit(f"{scheme}://{userinfo}{at}stand-in{rest[end:]}")
    nodes = []
    for location in locations.split(","):
        node = urlsplit(f"//{location.strip()}")
        try:
            port = node.port
        except ValueError as error:
            raise ValueError(f"{location!r} has no valid port") from error
        if not node.hostname or not port:  # none, or 0
            raise ValueError(f"{location!r} is not host:port")
        nodes.append((node.hostname, port))
    service_name = parts.path.strip("/")
    if topology == "sentinel" and (not service_name or "/" in service_name):
        raise ValueError("a Sentinel URL ends with the service name: /mymaster")
    if topology == "cluster" and service_name:
        raise ValueError("a Cluster URL has no path (a Cluster has one database)")
    if parts.query or parts.fragment:
        raise ValueError(f"{scheme}:// URLs take no query string")
    return RedisTarget(
        topology,
        url,
        tuple(nodes),
        service_name,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password is not None else None,
    )


# What a client's connections to the sentinels take of the options of its connections
# to the primary: a sentinel that does not answer must not hold a request either.
SENTINEL_OPTIONS = ("socket_timeout", "socket_connect_timeout")


def create_redis_client(url: str, **options: Any) -> RedisClient:
    """A client of the Redis that `url` names; `options` are redis-py's connection
    options (timeouts, decode_responses, ...)."""
    target = parse_redis_url(url)
    username, password = target.username, target.password
    if target.topology == "cluster":
        nodes = [ClusterNode(host, port) for host, port in target.nodes]
        return RedisCluster(startup_nodes=nodes, username=username, password=password, **options)
    if target.topology == "sentinel":
        auth = {"username": username, "password": password}
        asking = {name: value for name, value in options.items() if name in SENTINEL_OPTIONS}
        # redis-py's Sentinel is not annotated.
        sentinels = Sentinel(  # type: ignore[no-untyped-call]
            list(target.nodes), sentinel_kwargs={**auth, **asking}, **auth
        )
        primary: Redis = sentinels.master_for(target.service_name, **options)
        return primary
    client: Redis = Redis.from_url(url, **options)
    return client


async def close_redis_client(client: RedisClient) -> None:
    """Close `client`'s connections, and those to the sentinels that found its primary."""
    await client.aclose()
    pool = client.connection_pool if isinstance(client, Redis) else None
    if isinstance(pool, SentinelConnectionPool):
        for sentinel in pool.sentinel_manager.sentinels:
            await sentinel.aclose()
