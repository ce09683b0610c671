"""Fixtures shared by the chat tests."""

import asyncio
import contextlib

import pytest

TIMEOUT = 5


@pytest.fixture
async def connect(communicator):
    """Open a connection on the full app; every one is closed after the test."""
    opened = []

    async def make(origin: bytes | None = b"http://localhost"):
        comm = communicator(origin)
        connected, _ = await comm.connect(timeout=TIMEOUT)
        assert connected
        opened.append(comm)
        return comm

    yield make
    for comm in opened:
        # Already closed by the server, or its app ended (a timeout cancels it).
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await comm.disconnect(timeout=1)
