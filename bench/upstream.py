"""The fixed upstream every target calls: nginx when installed, else a small asyncio server.

Both answer ``POST /v1/chat/completions`` with one fixed chat completion,
``POST /stream/v1/chat/completions`` with one fixed SSE stream and
``POST /anthropic/v1/messages`` with one fixed Anthropic message (and take
``POST /v1/traces`` as an OTLP collector would), as fast as the
machine allows, so what is measured is the gateway in front of them.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

COMPLETION = (
    b'{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"bench-model",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,'
    b'"total_tokens":2}}'
)
_CHUNK = (
    b'{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,'
    b'"model":"bench-model","choices":[{"index":0,"delta":%s,"finish_reason":%s}]}'
)
STREAM = (
    b"data: " + _CHUNK % (b'{"role":"assistant","content":"ok"}', b"null") + b"\n\n"
    b"data: " + _CHUNK % (b"{}", b'"stop"') + b"\n\n"
    b"data: [DONE]\n\n"
)
MESSAGE = (
    b'{"id":"msg_bench","type":"message","role":"assistant","model":"claude-bench",'
    b'"content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","stop_sequence":null,'
    b'"usage":{"input_tokens":1,"output_tokens":1}}'
)
NGINX_TEMPLATE = Path(__file__).with_name("nginx.conf")


def start(port: int, workdir: Path, prefer_nginx: bool = True) -> tuple[subprocess.Popen, str]:
    """Start the upstream on 127.0.0.1:port; return the process and which server it is."""
    nginx = shutil.which("nginx") if prefer_nginx else None
    if nginx:
        conf = workdir / "nginx.conf"
        conf.write_text(
            NGINX_TEMPLATE.read_text()
            .replace("@PORT@", str(port))
            .replace("@DIR@", str(workdir))
            .replace("@COMPLETION@", COMPLETION.decode())
            .replace("@STREAM@", STREAM.decode().replace("\n", "\\n"))
            .replace("@MESSAGE@", MESSAGE.decode())
        )
        process = subprocess.Popen(
            [nginx, "-p", str(workdir), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        return process, "nginx"
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.upstream", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return process, "built-in asyncio server"


def _response(body: bytes, content_type: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: keep-alive\r\n\r\n"
        + body
    )


_RESPONSES = {
    b"/v1/chat/completions": _response(COMPLETION, b"application/json"),
    b"/stream/v1/chat/completions": _response(STREAM, b"text/event-stream"),
    b"/anthropic/v1/messages": _response(MESSAGE, b"application/json"),
    # An OTLP/HTTP collector's answer: an empty ExportTraceServiceResponse.
    b"/v1/traces": _response(b"", b"application/x-protobuf"),
}
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            path = lines[0].split(b" ")[1]
            length = 0
            for line in lines[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            writer.write(_RESPONSES.get(path, _NOT_FOUND))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _main(port: int) -> None:
    server = await asyncio.start_server(_serve_connection, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_main(int(sys.argv[1])))
