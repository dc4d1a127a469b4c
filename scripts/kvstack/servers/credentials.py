"""The run folder's passwords: RUN_DIR/secrets/credentials.env, generated once (mode 0600) and reused."""
from __future__ import annotations

import os
import secrets
import string
from dataclasses import dataclass

from kvstack.servers.common import LOG, dir_nonempty, nonempty, render
from kvstack.servers.paths import RunDir
from kvstack.servers.state import read_assignments

ALNUM = string.ascii_letters + string.digits


def new_password(n: int = 32) -> str:
    """32 characters of A-Za-z0-9: URI-safe, no escaping anywhere."""
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def new_cookie() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(20))


@dataclass(frozen=True)
class Credentials:
    pg_super: str
    pg_app: str
    redis: str
    amqp_user: str
    amqp: str
    replication: str = ""


def read_credentials(rd: RunDir) -> Credentials | None:
    """The run folder's credentials; None when the file is missing or empty; dies when it is incomplete."""
    if not nonempty(rd.cred_file):
        return None
    v = read_assignments(rd.cred_file) or {}
    c = Credentials(v.get("KVMESH_PG_SUPERUSER_PASSWORD", ""), v.get("KVMESH_PG_PASSWORD", ""),
                    v.get("KVMESH_REDIS_PASSWORD", ""), v.get("KVMESH_AMQP_USER", ""),
                    v.get("KVMESH_AMQP_PASSWORD", ""), v.get("KVMESH_PG_REPLICATION_PASSWORD", ""))
    if not (c.pg_super and c.pg_app and c.redis and c.amqp_user and c.amqp):
        LOG.die(f"{rd.cred_file} is incomplete; restore it (the servers' data hold these passwords)")
    return c


def credentials_text(run_dir: str) -> str:
    return render("credentials.env.j2", run_dir=run_dir, pg_super=new_password(), pg_app=new_password(),
                  redis=new_password(), amqp_user="kvmesh", amqp=new_password())


def ensure_credentials(rd: RunDir) -> Credentials:
    """The run folder's credentials, generated once (mode 0600) if it has none. Data made with other passwords (or
    before there were any) cannot be reused with new ones: that is refused with what to do instead."""
    c = read_credentials(rd)
    if c is not None:
        return c
    if nonempty(f"{rd.pg_data}/PG_VERSION") or dir_nonempty(f"{rd.rmq_dir()}/mnesia"):
        LOG.die(f"{rd.dir} holds server data but no {rd.cred_file} (data made before generated passwords, or the file "
                f"was deleted): restore the file, or start on a fresh run folder (or delete {rd.pg_dir} "
                f"{rd.rmq_dir()} {rd.redis_dir})")
    old = os.umask(0o077)
    try:
        os.makedirs(rd.secrets_dir, exist_ok=True)
        os.chmod(rd.secrets_dir, 0o700)
        tmp = rd.cred_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(credentials_text(rd.dir))
        os.replace(tmp, rd.cred_file)
    finally:
        os.umask(old)
    LOG.info(f"credentials: generated {rd.cred_file} (mode 0600)")
    c = read_credentials(rd)
    assert c is not None
    return c


def add_replication_password(rd: RunDir) -> None:
    """Appends KVMESH_PG_REPLICATION_PASSWORD to credentials.env (the standby's replication role)."""
    old = os.umask(0o077)
    try:
        with open(rd.cred_file, "a", encoding="utf-8") as f:
            f.write(f"KVMESH_PG_REPLICATION_PASSWORD={new_password()}\n")
    finally:
        os.umask(old)
    LOG.info(f"credentials: added the replication role's password to {rd.cred_file}")
