#!/usr/bin/env python3
"""TCP proxies on loopback that the fault suite can cut, for network partitions between two parts of the stack.

  netproxy.py --control PORT NAME=LISTEN:UPSTREAM ...

Each NAME forwards 127.0.0.1:LISTEN to 127.0.0.1:UPSTREAM; the stack is started with one part's address of one
server pointing at LISTEN (KVMESH_VIA_PROXY, scripts/kvstack/stack/render.py), so only that part's connections pass
through it. The control endpoint (HTTP on 127.0.0.1:PORT) takes

  POST /partition/NAME   stop forwarding: nothing is read from either side any more, so what each side sends waits in
                         the kernel's buffers and then its TCP retransmits, unanswered; new connections are accepted
                         by the kernel but not served. A partition, as seen by both ends: no reset, no close, silence.
  POST /heal/NAME        forward again: what waited is delivered, in order, nothing lost (as after a real partition
                         heals while TCP still retries); connections the ends gave up on meanwhile are closed by them.
  GET  /                 the proxies and their states (JSON)

Why not toxiproxy: its `timeout` toxic drops the data it holds and its `reset_peer` closes connections; neither is a
partition that heals with the streams intact, which is what kvmesh's clients meet on a real network. Standard library
only, as the rest of the suite.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys


class Proxy:
    def __init__(self, name: str, listen: int, upstream: int) -> None:
        self.name, self.listen, self.upstream = name, listen, upstream
        self.open = asyncio.Event()
        self.open.set()
        self.connections = 0
        self.partitions = 0
        self.upstream_ports: set[int] = set()  # local ports of the connections to the upstream (who the server sees)

    async def serve(self) -> None:
        server = await asyncio.start_server(self._client, "127.0.0.1", self.listen)
        async with server:
            await server.serve_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.open.wait()  # a partition: the kernel accepted it, nobody answers
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return
        self.connections += 1
        local = up_writer.get_extra_info("sockname")
        if local:
            self.upstream_ports.add(local[1])
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self.connections -= 1
            if local:
                self.upstream_ports.discard(local[1])
            for w in (writer, up_writer):
                w.close()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self.open.wait()
                data = await src.read(65536)
                if not data:
                    break
                await self.open.wait()   # read just before the cut: held until the heal, not lost
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                dst.write_eof()
            except (OSError, RuntimeError):
                dst.close()

    def state(self) -> dict:
        return {"listen": self.listen, "upstream": self.upstream, "partitioned": not self.open.is_set(),
                "connections": self.connections, "partitions": self.partitions,
                "upstream_ports": sorted(self.upstream_ports)}


async def control(proxies: dict[str, Proxy], port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await reader.readline()).decode(errors="replace").split()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            method, path = (line + ["", ""])[:2]
            parts = path.strip("/").split("/")
            status, body = "404 Not Found", {"error": f"no route {method} {path}"}
            if method == "GET" and path == "/":
                status, body = "200 OK", {n: p.state() for n, p in proxies.items()}
            elif method == "POST" and len(parts) == 2 and parts[0] in ("partition", "heal") and parts[1] in proxies:
                p = proxies[parts[1]]
                if parts[0] == "partition":
                    if p.open.is_set():
                        p.partitions += 1
                    p.open.clear()
                else:
                    p.open.set()
                status, body = "200 OK", p.state()
            data = json.dumps(body).encode()
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + data)
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


async def main_async(args: argparse.Namespace) -> None:
    proxies = {}
    for spec in args.proxy:
        name, ports = spec.split("=", 1)
        listen, upstream = ports.split(":", 1)
        proxies[name] = Proxy(name, int(listen), int(upstream))
    await asyncio.gather(control(proxies, args.control), *(p.serve() for p in proxies.values()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--control", type=int, required=True)
    ap.add_argument("proxy", nargs="+", help="NAME=LISTEN:UPSTREAM")
    try:
        asyncio.run(main_async(ap.parse_args()))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
