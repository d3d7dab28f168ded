"""A load generator for machines without ``wrk``: asyncio, raw keep-alive connections.

``python -m bench.load URL BODY CONNECTIONS SECONDS`` prints
``{"requests_per_second": ...}``. It runs in its own process so its CPU is
not the server's, and parses only what it must (status line, headers, body length).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


async def _worker(host: str, port: int, request: bytes, deadline: float, counts: list[int]):
    reader, writer = await asyncio.open_connection(host, port)
    done = 0
    while time.monotonic() < deadline:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
        headers = head.lower()
        if b"transfer-encoding: chunked" in headers:
            while True:
                size = int((await reader.readline()).strip(), 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            length = int(headers.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
        done += 1
    counts.append(done)
    writer.close()


async def _main(url: str, body: str, connections: int, seconds: float) -> float:
    parts = urlsplit(url)
    payload = body.encode()
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    counts: list[int] = []
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(
        *(
            _worker(parts.hostname, parts.port, request, deadline, counts)
            for _ in range(connections)
        )
    )
    return sum(counts) / (time.monotonic() - started)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    url, body, connections, seconds = sys.argv[1:5]
    rate = asyncio.run(_main(url, body, int(connections), float(seconds)))
    print(json.dumps({"requests_per_second": rate}))
