"""Fakes for the stack manager's tests: settings from a dict, probes and a supervisor that start nothing."""
from __future__ import annotations

import os

from kvstack.stack import settings
from kvstack.stack.health import Probes
from kvstack.stack.supervisor import ProgramState

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_settings(root: str, run_dir: str, **env: str) -> settings.Settings:
    environ = {"KVMESH_RUN_DIR": run_dir, **env}
    return settings.from_environ(root, environ)


class FakeProbes(Probes):
    def __init__(self) -> None:
        super().__init__(ROOT)
        self.grpc: set[str] = set()  # ports answering SERVING
        self.codes: dict[str, int] = {}  # url -> status
        self.bodies: dict[str, str] = {}
        self.up: set[str] = set()

    def grpc_serving(self, port: str) -> bool:
        return port in self.grpc

    def http_get(self, url: str, timeout: float = 3) -> tuple[int, str]:
        return self.codes.get(url, 0), self.bodies.get(url, "")

    def servers_up(self, run_dir: str) -> set[str]:
        return set(self.up)


class FakeSupervisor:
    def __init__(self, states: dict[str, ProgramState] | None = None, running: bool = True) -> None:
        self._states = states or {}
        self._running = running
        self.calls: list[tuple[str, str]] = []

    def running(self) -> bool:
        return self._running

    def states(self) -> dict[str, ProgramState]:
        return dict(self._states)

    def stop(self, name: str) -> None:
        self.calls.append(("stop", name))

    def start(self, name: str) -> None:
        self.calls.append(("start", name))

    def restart(self, name: str) -> None:
        self.calls.append(("restart", name))

    def replace(self, name: str) -> bool:
        self.calls.append(("replace", name))
        return True

    def shutdown(self) -> bool:
        self.calls.append(("shutdown", ""))
        return True
