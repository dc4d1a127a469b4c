"""A native gRPC Watch (h2c, to Envoy's port) that never reads, in a few dozen lines of HTTP/2 instead of a gRPC
library: the suite stays on Python's standard library, and a client that never reads is exactly what a library
makes hard to write.

It advertises a 64 KB window and sends no WINDOW_UPDATE until `drain` is called, so the server can send it only
that much: everything else has to be held (or refused) by Envoy and the replica behind it.
"""
from __future__ import annotations

import socket
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _literal(name: str, value: str) -> bytes:
    """HPACK literal header field without indexing, no Huffman (RFC 7541 6.2.2)."""
    def s(x: str) -> bytes:
        b = x.encode()
        assert len(b) < 127
        return bytes([len(b)]) + b
    return b"\x00" + s(name) + s(value)


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


class SlowGrpcWatch:
    def __init__(self, port: int, prefix: str, rcvbuf: int = 4096):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        self.sock.sendall(PREFACE + _frame(SETTINGS, 0, 0, struct.pack(">HI", 0x2, 0)))   # ENABLE_PUSH = 0
        self._await_server_settings()
        headers = b"".join(_literal(n, v) for n, v in (
            (":method", "POST"), (":scheme", "http"), (":path", "/kvmesh.v1.KeyValue/Watch"),
            (":authority", f"127.0.0.1:{port}"), ("content-type", "application/grpc"), ("te", "trailers")))
        pb = prefix.encode()
        msg = b"\x0a" + _varint(len(pb)) + pb                      # WatchRequest{prefix = 1}
        self.sock.sendall(_frame(HEADERS, END_HEADERS, 1, headers)
                          + _frame(DATA, END_STREAM, 1, b"\x00" + struct.pack(">I", len(msg)) + msg))

    def _read_frame(self) -> tuple[int, int, int, bytes]:
        while len(self.buf) < 9:
            self._fill()
        n = int.from_bytes(self.buf[:3], "big")
        while len(self.buf) < 9 + n:
            self._fill()
        kind, flags = self.buf[3], self.buf[4]
        stream = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
        payload, self.buf = self.buf[9:9 + n], self.buf[9 + n:]
        return kind, flags, stream, payload

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def _await_server_settings(self) -> None:
        while True:
            kind, flags, _, _ = self._read_frame()
            if kind == SETTINGS and not flags & ACK:
                self.sock.sendall(_frame(SETTINGS, ACK, 0))
                return

    def drain(self, idle_s: float, max_s: float) -> tuple[bool, int, str]:
        """Reads, now granting window, until the stream ends -> (ended, DATA bytes, how it ended)."""
        self.sock.settimeout(idle_s)
        total, end = 0, time.time() + max_s
        try:
            while time.time() < end:
                kind, flags, stream, payload = self._read_frame()
                if kind == DATA and payload:
                    total += len(payload)
                    inc = struct.pack(">I", len(payload))
                    self.sock.sendall(_frame(WINDOW_UPDATE, 0, 0, inc) + _frame(WINDOW_UPDATE, 0, 1, inc))
                if kind == PING and not flags & ACK:
                    self.sock.sendall(_frame(PING, ACK, 0, payload))
                if stream == 1 and kind in (DATA, HEADERS) and flags & END_STREAM:
                    return True, total, "stream ended with trailers"
                if stream == 1 and kind == RST_STREAM:
                    return True, total, f"RST_STREAM error code {struct.unpack('>I', payload)[0]}"
                if kind == GOAWAY:
                    return True, total, f"GOAWAY error code {struct.unpack('>I', payload[4:8])[0]}"
        except socket.timeout:
            return False, total, "no trailers"
        except (EOFError, OSError) as e:
            return True, total, f"connection closed ({type(e).__name__})"
        return False, total, f"still sending after {max_s:.0f}s"

    def close(self) -> None:
        self.sock.close()
