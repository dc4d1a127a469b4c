"""supervisord control over its XML-RPC unix socket (what supervisorctl did): state, pid and uptime of every program,
stop/start/restart one, replace one with its new configuration, shutdown."""
from __future__ import annotations

import http.client
import os
import socket
import stat
import xmlrpc.client
from dataclasses import dataclass
from typing import Any, Protocol

from kvstack import proc


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


class UnixTransport(xmlrpc.client.Transport):
    """HTTP over a unix socket for xmlrpc.client."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__()
        self._path = path
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        if self._connection[1] is not None and self._connection[0] == host:
            return self._connection[1]
        conn = _UnixConnection(self._path, self._timeout)
        self._connection = host, conn
        return conn


@dataclass
class ProgramState:
    state: str  # RUNNING, STARTING, BACKOFF, FATAL, STOPPED, EXITED, STOPPING, UNKNOWN
    pid: int | None  # only while RUNNING (as supervisorctl status shows it)
    uptime: str | None  # H:MM:SS, only while RUNNING


def format_uptime(secs: int) -> str:
    """H:MM:SS as supervisorctl shows a running program's uptime (hours keep counting past a day)."""
    secs = max(0, int(secs))
    return f"{secs // 3600}:{secs % 3600 // 60:02d}:{secs % 60:02d}"


class SupervisorApi(Protocol):
    def running(self) -> bool: ...
    def states(self) -> dict[str, ProgramState]: ...
    def stop(self, name: str) -> None: ...
    def start(self, name: str) -> None: ...
    def restart(self, name: str) -> None: ...
    def replace(self, name: str) -> bool: ...
    def shutdown(self) -> bool: ...


class Supervisor:
    """One run folder's supervisord, through its socket; errors are swallowed as `supervisorctl ... || true` did."""

    def __init__(self, sock: str, pidfile: str) -> None:
        self.sock = sock
        self.pidfile = pidfile

    def _proxy(self, timeout: float = 10) -> Any:
        return xmlrpc.client.ServerProxy("http://localhost/RPC2", transport=UnixTransport(self.sock, timeout))

    def pid(self) -> int | None:
        return proc.read_pid(self.pidfile)

    def running(self) -> bool:
        """Its pid file names a live process, the socket exists and supervisord answers with that pid."""
        p = self.pid()
        if not proc.pid_alive(p):
            return False
        try:
            if not stat.S_ISSOCK(os.stat(self.sock).st_mode):
                return False
            return bool(int(self._proxy().supervisor.getPID()) == p)
        except (OSError, xmlrpc.client.Error, ValueError, http.client.HTTPException):
            return False

    def states(self) -> dict[str, ProgramState]:
        try:
            infos = self._proxy().supervisor.getAllProcessInfo()
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            return {}
        out: dict[str, ProgramState] = {}
        for info in infos:
            name = info["name"] if info["group"] == info["name"] else f"{info['group']}:{info['name']}"
            running = info["statename"] == "RUNNING"
            out[name] = ProgramState(info["statename"], int(info["pid"]) if running else None,
                                     format_uptime(int(info["now"]) - int(info["start"])) if running else None)
        return out

    def _call(self, method: str, *args: Any) -> bool:
        try:
            getattr(self._proxy(timeout=600).supervisor, method)(*args)
            return True
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            return False

    def stop(self, name: str) -> None:
        self._call("stopProcess", name, True)

    def start(self, name: str) -> None:
        self._call("startProcess", name, True)

    def restart(self, name: str) -> None:
        """Stops it (its stop signal, SIGKILL to its group after stopwaitsecs) and starts it again; returns once the
        new process has lived startsecs (supervisorctl restart)."""
        self.stop(name)
        self.start(name)

    def replace(self, name: str) -> bool:
        """Stops program NAME, then starts it from the configuration file as it is now (supervisorctl reread, then
        update of that one group): its command may have changed (a new release). Returns once the old process is gone
        and the new one is launched (autostart: supervisord starts it at once); False if supervisord refused a step."""
        if not self._call("reloadConfig"):
            return False
        self.stop(name)
        return self._call("removeProcessGroup", name) and self._call("addProcessGroup", name)

    def shutdown(self) -> bool:
        return self._call("shutdown")
