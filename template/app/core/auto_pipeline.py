"""Redis commands issued at about the same time, sent together as one pipeline.

Under load, many requests reach their authentication read within the same turn of the
event loop. Sent one by one, each pays a whole redis-py round trip: a connection
checkout, a write, a parse and a release, about 70-100 µs of CPU. Queued and sent on the
loop's next turn as one pipeline, they share all but the parse: about 20-30 µs each
with 8 to 32 requests in flight (measured). A lone command waits for nothing more than
the rest of the current turn.

Commands stay independent (no MULTI): each gets its own reply, or its own error.
"""

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT


class AutoPipeline:
    def __init__(self, client: Redis) -> None:
        self._client = client
        self._queued: list[tuple[tuple[EncodableT, ...], asyncio.Future[Any]]] = []
        # The running flushes: the loop holds only weak references to tasks.
        self._flushes: set[asyncio.Task[None]] = set()

    async def execute(self, *command: EncodableT) -> Any:
        """The reply to `command` (its name, then its arguments), or its error raised."""
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self._queued:
            # Runs after the callbacks already due on this turn: requests they resume
            # queue their commands first, and go out in the same write.
            flush = asyncio.create_task(self._flush())
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)
        self._queued.append((command, reply))
        return await reply

    async def _flush(self) -> None:
        batch, self._queued = self._queued, []
        pipeline = self._client.pipeline(transaction=False)
        for command, _ in batch:
            pipeline.execute_command(*command)
        try:
            replies = await pipeline.execute(raise_on_error=False)
        except asyncio.CancelledError:  # the loop is shutting down
            for _, reply in batch:
                reply.cancel()
            raise
        except Exception as error:  # the connection failed: every command did
            for _, reply in batch:
                if not reply.done():
                    reply.set_exception(error)
            return
        for (_, reply), value in zip(batch, replies, strict=True):
            if reply.done():  # its caller was cancelled (a client that went away)
                continue
            if isinstance(value, Exception):
                reply.set_exception(value)
            else:
                reply.set_result(value)
