"""bench_serve's load client: status and body of length-delimited and chunked replies, reconnect after close."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bench_serve():
    spec = importlib.util.spec_from_file_location(
        "bench_serve_module", ROOT / "embeddingFT" / "bench" / "bench_serve.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


REPLIES = [
    b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n{"a": [1.5]}',
    b"HTTP/1.1 429 Too Many Requests\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbusy\r\n3\r\n!!!\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext",
]


async def _exchange(module) -> tuple[list, list, list]:
    seen, connections, replies = [], [], iter(REPLIES)

    async def handle(reader, writer):
        connections.append(1)
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1])
            seen.append(
                (head.split(b"\r\n")[0], b"authorization: bearer k" in head.lower(), await reader.readexactly(length))
            )
            reply = next(replies)
            writer.write(reply)
            await writer.drain()
            if b"Connection: close" in reply:
                writer.close()
                break

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = module.RawConnection("127.0.0.1", port, {"Authorization": "Bearer k"})
    got = [await client.post("/v1/embeddings", {"input": f"text {i}"}) for i in range(4)]
    await client.close()
    server.close()
    await server.wait_closed()
    return got, seen, connections


def test_raw_connection_reads_each_reply_whole_and_reconnects_after_close():
    got, seen, connections = asyncio.run(_exchange(bench_serve()))
    assert got == [(200, b'{"a": [1.5]}'), (429, b"busy!!!"), (200, b"ok"), (200, b"next")]
    assert [line for line, _, _ in seen] == [b"POST /v1/embeddings HTTP/1.1"] * 4
    assert all(auth for _, auth, _ in seen) and seen[1][2] == b'{"input":"text 1"}'
    assert len(connections) == 2  # the server closed after the third reply: the fourth came on a new connection
