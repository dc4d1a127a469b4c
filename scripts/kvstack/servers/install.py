"""Where the server binaries are, and `install` (apt) of the missing ones."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time

from kvstack.servers.common import LOG, is_root


def pg_bindir() -> str:
    """The newest /usr/lib/postgresql/*/bin with initdb, else the folder of initdb on PATH, else ""."""
    best = ""
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin")):  # numeric versions of equal length sort fine
        if os.access(f"{d}/initdb", os.X_OK):
            best = d
    if not best:
        i = shutil.which("initdb")
        if i:
            best = os.path.dirname(os.path.realpath(i))
    return best


def rabbit_bin() -> str:
    """The folder with the real rabbitmq-server / rabbitmqctl (bypassing Debian's su wrapper)."""
    if os.access("/usr/lib/rabbitmq/bin/rabbitmq-server", os.X_OK):
        return "/usr/lib/rabbitmq/bin"
    s = shutil.which("rabbitmq-server")
    return os.path.dirname(s) if s else ""


def missing_packages() -> list[str]:
    missing: list[str] = []
    if not pg_bindir():
        missing += ["postgresql", "postgresql-client"]
    if not shutil.which("redis-server"):
        missing.append("redis-server")
    if not shutil.which("redis-cli"):
        missing.append("redis-tools")
    if not rabbit_bin():
        missing.append("rabbitmq-server")
    if not shutil.which("setpriv"):
        missing.append("util-linux")
    return missing


def have_all() -> bool:
    return bool(pg_bindir() and shutil.which("redis-server") and shutil.which("redis-cli") and rabbit_bin())


def cmd_install() -> int:
    missing = missing_packages()
    if not missing:
        LOG.info(f"install: postgresql ({pg_bindir()}), redis-server, rabbitmq-server already present")
        return 0
    names = " ".join(missing)
    if not is_root():
        LOG.die(f"install: missing {names}; installing needs root")
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-o", "Acquire::Retries=3"]
    LOG.info(f"install: missing {names}; running apt-get update")
    for i in (1, 2, 3):
        if subprocess.run([*apt, "update", "-q"], check=False).returncode == 0:
            break
        if i == 3:
            LOG.die("install: apt-get update failed")
        LOG.warn(f"apt-get update failed (attempt {i}), retrying in 10 s")
        time.sleep(10)
    LOG.info(f"install: apt-get install {names}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run([*apt, "install", "-y", "-q", "--no-install-recommends", *missing], env=env,
                      check=False).returncode != 0:
        LOG.die("install: apt-get install failed")
    if not have_all():
        LOG.die("install: packages installed but binaries still missing")
    LOG.info("install: done")
    return 0
