"""The run folder: where each server keeps its data, logs, pid files and state, and the lock that serialises
start/stop/ctl on one folder."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NoReturn

from kvstack import proc
from kvstack.servers.common import LOG

LOCK_TIMEOUT = 300.0


class UsageError(Exception):
    """A command line servers.sh does not take: usage on stderr, exit 2."""


@dataclass(frozen=True)
class RunDir:
    """Every path of one run folder (dir is absolute and physical, as `cd DIR && pwd -P`)."""

    dir: str

    @property
    def state(self) -> str:
        return f"{self.dir}/servers.state"

    @property
    def env_file(self) -> str:
        return f"{self.dir}/servers.env"

    @property
    def logs(self) -> str:
        return f"{self.dir}/logs"

    @property
    def pg_dir(self) -> str:
        return f"{self.dir}/postgres"

    @property
    def pg_data(self) -> str:
        return f"{self.pg_dir}/data"

    @property
    def pg_fence(self) -> str:
        return f"{self.pg_dir}/FENCED"

    @property
    def pgs_dir(self) -> str:
        return f"{self.dir}/postgres-standby"

    @property
    def pgs_data(self) -> str:
        return f"{self.pgs_dir}/data"

    @property
    def pgs_state(self) -> str:
        return f"{self.dir}/pg-standby.state"

    @property
    def redis_dir(self) -> str:
        return f"{self.dir}/redis"

    @property
    def redis_pidfile(self) -> str:
        return f"{self.redis_dir}/redis.pid"

    @property
    def rmq_cluster_state(self) -> str:
        return f"{self.dir}/rabbitmq-cluster.state"

    def rmq_dir(self, n: int = 1) -> str:
        return f"{self.dir}/rabbitmq" if n == 1 else f"{self.dir}/rabbitmq-{n}"

    @property
    def secrets_dir(self) -> str:
        return f"{self.dir}/secrets"

    @property
    def cred_file(self) -> str:
        return f"{self.secrets_dir}/credentials.env"

    @property
    def lock_file(self) -> str:
        return f"{self.dir}/.servers.lock"

    def log(self, name: str) -> str:
        return f"{self.logs}/{name}"


def usage_error() -> NoReturn:
    raise UsageError()


def open_run_dir(arg: str | None, chdir: bool = True) -> RunDir:
    """The shell's set_run_dir: creates the folder if it can, resolves it, and makes it the working directory (the
    service users must be able to access their cwd)."""
    if not arg:
        usage_error()
    try:
        os.makedirs(arg, exist_ok=True)
    except OSError:
        pass
    if not os.path.isdir(arg):
        LOG.die(f"RUN_DIR {arg} does not exist and cannot be created")
    d = os.path.realpath(arg)
    if chdir:
        os.chdir(d)
    return RunDir(d)


class RunDirLock:
    """flock on RUN_DIR/.servers.lock (300 s at most). The fd is not inheritable: no daemon ever holds it."""

    def __init__(self, rd: RunDir, timeout: float = LOCK_TIMEOUT) -> None:
        self.rd = rd
        self.timeout = timeout
        self.fd: int | None = None

    def acquire(self) -> RunDirLock:
        fd = proc.flock_wait(self.rd.lock_file, self.timeout)
        if fd is None:
            LOG.die(f"timed out waiting for the lock on {self.rd.dir} (another servers.sh still running?)")
        self.fd = fd
        return self

    def __enter__(self) -> RunDirLock:
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
