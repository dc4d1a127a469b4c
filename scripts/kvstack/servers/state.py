"""State files of a run folder: servers.state, rabbitmq-cluster.state and pg-standby.state (`NAME=value` lines, shell
quoted: ghz-bench/run.sh sources servers.state) and servers.env (`export NAME=value` lines, mode 0600).

Values are quoted with shlex.quote: a plain word (ports, paths, node names, URIs) stays unquoted, exactly as bash's
printf %q wrote it, so `sed -n 's/^export NAME=//p'` readers get the bare value; anything else is single-quoted,
which bash `source`, shlex.split (scripts/faults/stack.py) and this module's reader all take back unchanged."""
from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from kvstack.envfile import parse_env_text
from kvstack.servers.common import render


def quote(value: str) -> str:
    return shlex.quote(value)


def parse_assignments(text: str) -> dict[str, str]:
    """NAME=value lines (optionally `export`ed, shell-quoted) into a dict (kvstack.envfile's reader)."""
    return parse_env_text(text)


def read_assignments(path: str) -> dict[str, str] | None:
    """The assignments of a file, None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as f:
            return parse_assignments(f.read())
    except FileNotFoundError:
        return None


def format_assignments(pairs: Iterable[tuple[str, str]], export: bool = False) -> str:
    prefix = "export " if export else ""
    return "".join(f"{prefix}{k}={quote(v)}\n" for k, v in pairs)


def write_atomic(path: str, text: str, mode: int | None = None) -> None:
    """text into path via path.tmp (mode: created with it, e.g. 0600 for a file with passwords)."""
    tmp = path + ".tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 if mode is None else mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


@dataclass
class State:
    """servers.state: the ports, node 1's name and the PostgreSQL socket folder (kept across starts: name, socket)."""

    pg_port: str = ""
    redis_port: str = ""
    amqp_port: str = ""
    dist_port: str = ""
    rabbit_node: str = ""
    pg_sock: str = ""

    FIELDS = (("PG_PORT", "pg_port"), ("REDIS_PORT", "redis_port"), ("AMQP_PORT", "amqp_port"),
              ("DIST_PORT", "dist_port"), ("RABBIT_NODE", "rabbit_node"), ("PG_SOCK", "pg_sock"))

    @classmethod
    def load(cls, path: str) -> State | None:
        values = read_assignments(path)
        if values is None:
            return None
        return cls(**{attr: values.get(name, "") for name, attr in cls.FIELDS})

    def text(self) -> str:
        return format_assignments((name, getattr(self, attr)) for name, attr in self.FIELDS)

    def write(self, path: str) -> None:
        write_atomic(path, self.text())


def env_text(self_path: str, run_dir: str, pairs: Iterable[tuple[str, str]]) -> str:
    """servers.env's content (templates/servers/servers.env.j2)."""
    return render("servers.env.j2", self_path=self_path, run_dir=run_dir,
                  lines=[f"export {k}={quote(v)}" for k, v in pairs])


def write_env(path: str, self_path: str, run_dir: str, pairs: Iterable[tuple[str, str]]) -> None:
    """servers.env, mode 0600 (it holds the application's passwords)."""
    write_atomic(path, env_text(self_path, run_dir, pairs), 0o600)

