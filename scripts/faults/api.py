"""The public REST API through nginx, as a client sees it (both route families, see README), with every answer
classified the way the checker needs:

  acked    200 with status queued|applied and an operationId: the write must be applied, exactly once
  failed   an HTTP error answer, or no connection at all (the request never left): may still have applied (a lost
           broker confirm), so it is checked to be applied at most once
  unknown  the request was sent but no answer came (timeout, reset): applied at most once

One connection per request, so "the request never left" (connection refused) is told apart from "sent, no answer".
"""
from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.parse
from dataclasses import dataclass


@dataclass
class Answer:
    sent: bool               # the request reached the server (connection established and request written)
    status: int | None       # HTTP status, None without an answer
    body: dict | None        # parsed JSON body
    error: str = ""          # exception class or a short reason
    t_start: float = 0.0
    t_done: float = 0.0


class Api:
    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.host, self.port = host, port

    def call(self, method: str, path: str, body: dict | None = None, headers: dict | None = None,
             timeout: float = 20.0) -> Answer:
        t0 = time.time()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            try:
                conn.connect()
            except OSError as e:
                return Answer(False, None, None, type(e).__name__, t0, time.time())
            data = json.dumps(body).encode() if body is not None else None
            hdrs = {"Content-Type": "application/json"} if data is not None else {}
            hdrs.update(headers or {})
            try:
                conn.request(method, path, body=data, headers=hdrs)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as e:
                return Answer(True, None, None, type(e).__name__, t0, time.time())
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                parsed = {"raw": raw[:200].decode("utf-8", "replace")} if raw else None
            return Answer(True, resp.status, parsed, "", t0, time.time())
        finally:
            conn.close()

    # ------------------------------------------------------------------ writes

    def put(self, key: str, value: str, request_id: str | None, mode: str, family: str,
            headers: dict | None = None, timeout: float = 20.0) -> Answer:
        opts = {"mode": mode}
        if request_id is not None:
            opts["requestId"] = request_id
        if family == "kv":
            body = {"data": {"key": key, "value": value}, **opts}
        else:
            body = {"key": key, "value": value, **opts}
        return self.call("PUT", "/" + family, body, headers, timeout)

    def delete(self, key: str, request_id: str | None, mode: str, family: str, timeout: float = 20.0) -> Answer:
        q = {"key": key, "mode": mode}
        if request_id is not None:
            q["requestId"] = request_id
        return self.call("DELETE", f"/{family}?{urllib.parse.urlencode(q)}", None, None, timeout)

    # ------------------------------------------------------------------ reads

    def get(self, key: str, family: str = "kv", timeout: float = 10.0) -> Answer:
        return self.call("GET", f"/{family}?{urllib.parse.urlencode({'key': key})}", None, None, timeout)

    def operation(self, op_id: str, timeout: float = 10.0) -> Answer:
        return self.call("GET", f"/kv/operations/{urllib.parse.quote(op_id)}", None, None, timeout)


def classify_write(a: Answer) -> tuple[str, str, str, int | None]:
    """-> (outcome, status, operation id, version) for a write's answer."""
    if a.status is None:
        return ("unknown" if a.sent else "failed"), a.error, "", None
    body = a.body or {}
    if a.status == 200 and body.get("status") in ("queued", "applied") and body.get("operationId"):
        # only an "applied" answer names a version ("queued" ones may print the field as "0")
        v = body.get("version") if body["status"] == "applied" else None
        return "acked", body["status"], body["operationId"], int(v) if v not in (None, "", "0") else None
    if a.status == 200:
        return "unknown", f"200 {str(body)[:80]}", "", None
    return "failed", f"{a.status} {body.get('code', '')}".strip(), "", None


def read_result(a: Answer) -> tuple[int | None, str | None, str]:
    """-> (version, value, source) of a GET answer; version None when the key is absent or on error."""
    if a.status == 200 and a.body and isinstance(a.body.get("data"), dict):
        d = a.body["data"]
        return int(d.get("version", 0)), d.get("value"), a.body.get("source", "")
    return None, None, ""


def open_raw_stream(port: int, path: str, rcvbuf: int = 4096, timeout: float = 10.0) -> socket.socket:
    """A GET whose answer is never read: a tiny receive buffer, the request sent, nothing read (slow watcher)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    # Connection: close, so the end of the answer is the end of the connection (with keep-alive a complete chunked
    # answer leaves the socket open, and a reader of raw bytes could not tell an ended stream from a stuck one)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/x-ndjson\r\nConnection: close\r\n\r\n"
              .encode())
    return s
