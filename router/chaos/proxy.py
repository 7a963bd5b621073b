"""A small asyncio TCP proxy that injects network faults between one replica and Redis.

Toxiproxy cannot be installed here, so this does the few things the chaos runs need, on
loopback only: added latency with jitter (order kept per direction), connection resets
(every open connection aborted with RST), and a blackhole (nothing is delivered either
way while it lasts; bytes are held, as TCP would keep retransmitting them, and delivered
when it lifts, unless the peer gave up first).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time

_CHUNK = 65536


class FaultProxy:
    """Listens on 127.0.0.1:`port` (0: a free one) and forwards to `upstream_port`."""

    def __init__(self, upstream_port: int, port: int = 0, seed: int = 0) -> None:
        self.upstream_port = upstream_port
        self.port = port
        self.latency_s = 0.0
        self.jitter_s = 0.0
        self._rng = random.Random(seed)
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._conns: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.resets = 0
        self.accepted = 0

    async def start(self) -> int:
        """Start listening; returns the port."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        """Close the listener and every connection."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        self.reset_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- faults -----------------------------------------------------------------------

    def set_latency(self, latency_s: float, jitter_s: float = 0.0) -> None:
        """Delay every chunk by `latency_s` plus up to `jitter_s` (0, 0: none)."""
        self.latency_s, self.jitter_s = latency_s, jitter_s

    def blackhole(self, on: bool) -> None:
        """Hold every byte (on) or deliver again (off)."""
        if on:
            self._open.clear()
        else:
            self._open.set()

    @property
    def is_blackholed(self) -> bool:
        """Is the blackhole on?"""
        return not self._open.is_set()

    def reset_all(self) -> int:
        """Abort every open connection with RST; returns how many."""
        count = 0
        for client, upstream in list(self._conns):
            for writer in (client, upstream):
                _rst(writer)
            count += 1
        self._conns.clear()
        self.resets += count
        return count

    def heal(self) -> None:
        """No latency, no blackhole."""
        self.set_latency(0.0, 0.0)
        self.blackhole(False)

    # --- forwarding -------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.upstream_port), 5.0
            )
        except (OSError, TimeoutError):
            _rst(writer)
            return
        pair = (writer, up_writer)
        self._conns.add(pair)
        tasks = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        for task in tasks:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._conns.discard(pair)
            for task in tasks:
                task.cancel()
            for w in pair:
                with contextlib.suppress(Exception):
                    w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction, chunk by chunk, with the faults in force; order is kept
        because each chunk waits for its due time in turn."""
        due = 0.0
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                delay = self.latency_s + (
                    self._rng.uniform(0, self.jitter_s) if self.jitter_s else 0
                )
                if delay > 0:
                    due = max(due, time.monotonic() + delay)
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                await self._open.wait()
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0, so the peer sees a reset, not an orderly close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
