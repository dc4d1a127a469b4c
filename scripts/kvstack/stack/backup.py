"""`./start.sh backup [FILE]` and `./start.sh restore FILE` (native mode).

backup: one consistent snapshot of the store (PostgreSQL's kvmesh database: kv, kv_oplog, kv_request_id and Flyway's
history) taken from a running stack under load, without stopping anything. A psql session opens a REPEATABLE READ,
READ ONLY transaction and exports its snapshot; `pg_dump --format=custom --snapshot=…` dumps exactly that snapshot, and
the same transaction counts what it holds for the manifest (FILE.json), so the figures and the dump agree. The
appliers commit each batch of operations in one transaction and write no other way, so a snapshot holds whole batches:
every operation committed before it, with its key's row, and nothing after it. (pg_dump's --serializable-deferrable
adds nothing here: it matters only when the writers run SERIALIZABLE, which kvmesh's do not, and it can wait.)
Just before the snapshot the broker's partition queues are read (messages ready + unacknowledged): what was
acknowledged and queued but not yet applied when the backup began. None of that is in the backup; the running stack
applies it as usual.

restore: a backup into a fresh run folder (KVMESH_RUN_DIR with no server data, no stack running): the servers'
folders are prepared (new credentials), PostgreSQL alone is started, pg_restore loads the dump in one transaction
(the schema comes from the dump, Flyway's history with it, so the services find it up to date), the counts are
checked against the manifest, PostgreSQL is stopped, and the whole stack starts as `./start.sh` does.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from kvstack import proc
from kvstack.servers.install import pg_bindir
from kvstack.stack import paths
from kvstack.stack.settings import LOG

if TYPE_CHECKING:
    from kvstack.stack.commands import Stack

MANIFEST_FORMAT = "kvmesh-backup/1"
PSQL_TIMEOUT_S = 60.0
RABBITMQCTL_TIMEOUT_S = 60.0
MIGRATION_FILE = re.compile(r"V(\d+(?:[._]\d+)*)__.+\.sql")

# Every figure the manifest states about the snapshot, from one statement inside the snapshot's transaction.
STATS_SQL = """SELECT json_build_object(
 'keys', (SELECT count(*) FROM kv),
 'keys_live', (SELECT count(*) FROM kv WHERE value IS NOT NULL
               AND (expire_time IS NULL OR expire_time > statement_timestamp())),
 'keys_expired', (SELECT count(*) FROM kv WHERE value IS NOT NULL AND expire_time <= statement_timestamp()),
 'tombstones', (SELECT count(*) FROM kv WHERE value IS NULL),
 'oplog_rows', (SELECT count(*) FROM kv_oplog),
 'oplog_outcomes', (SELECT coalesce(json_object_agg(outcome, n), '{}'::json)
                    FROM (SELECT outcome, count(*) AS n FROM kv_oplog GROUP BY outcome) o),
 'request_ids', (SELECT count(*) FROM kv_request_id),
 'request_ids_not_applied', (SELECT count(*) FROM kv_request_id r
                             WHERE NOT EXISTS (SELECT 1 FROM kv_oplog o WHERE o.id = r.operation_id)),
 'last_apply_time', (SELECT to_char(max(apply_time) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
                     FROM kv_oplog),
 'last_update_time', (SELECT to_char(max(update_time) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') FROM kv),
 'schema_version', (SELECT version FROM flyway_schema_history WHERE success AND version IS NOT NULL
                    ORDER BY installed_rank DESC LIMIT 1)
)"""
SNAPSHOT_SQL = ("SELECT pg_export_snapshot() || '|' || to_char(statement_timestamp() AT TIME ZONE 'UTC', "
                "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') || '|' || extract(epoch FROM statement_timestamp())")
# the figures that must come back identical from a restored database (keys_live and keys_expired depend on the clock)
COMPARED = ("keys", "tombstones", "oplog_rows", "oplog_outcomes", "request_ids", "request_ids_not_applied",
            "schema_version")


class BackupError(Exception):
    pass


# ---------------------------------------------------------------- pure parts (unit-tested)

def utc_stamp(t: float) -> str:
    """20261207T164016Z: the UTC time in a file name."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


def iso_utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e6):06d}Z"


def default_backup_file(run_dir: str, t: float) -> str:
    return f"{run_dir}/backups/kvmesh-{utc_stamp(t)}.dump"


def manifest_path(dump: str) -> str:
    return dump + ".json"


@dataclass
class QueueDepths:
    """The broker's operation queues when the backup began: partition -> (ready, unacknowledged) messages."""

    partitions: dict[int, tuple[int, int]] = field(default_factory=dict)
    dead: int = 0
    error: str = ""

    @property
    def messages(self) -> int:
        return sum(r + u for r, u in self.partitions.values())

    def to_json(self) -> dict[str, Any]:
        if self.error:
            return {"error": self.error}
        return {"messages": self.messages, "dead_lettered": self.dead,
                "partitions": {str(p): {"ready": r, "unacknowledged": u}
                               for p, (r, u) in sorted(self.partitions.items())}}


def parse_queue_depths(text: str, prefix: str = "kv") -> QueueDepths:
    """`rabbitmqctl list_queues -q name messages_ready messages_unacknowledged` -> the partition queues (PREFIX.ops.N)
    and the dead-letter queue (PREFIX.ops.dead); other queues (the replicas' event queues) are left out."""
    part = re.compile(re.escape(prefix) + r"\.ops\.(\d+)")
    out = QueueDepths()
    for line in text.splitlines():
        words = line.split()
        if len(words) != 3 or not (words[1].isdigit() and words[2].isdigit()):
            continue
        ready, unacked = int(words[1]), int(words[2])
        m = part.fullmatch(words[0])
        if m:
            out.partitions[int(m.group(1))] = (ready, unacked)
        elif words[0] == f"{prefix}.ops.dead":
            out.dead = ready + unacked
    return out


def _per_partition(data: Mapping[str, Any]) -> str:
    return ", ".join(f"partition {p}: {v['ready'] + v['unacknowledged']}"
                     for p, v in sorted(data.get("partitions", {}).items(), key=lambda kv: int(kv[0])))


def queued_sentence(q: QueueDepths) -> str:
    """What the backup command says about the writes queued but not applied when it began."""
    if q.error:
        return (f"the broker's queues could not be read ({q.error}): the writes acknowledged and queued but not yet "
                "applied when the backup began are not in this backup, and their number is unknown")
    n = q.messages
    per = _per_partition(q.to_json()) or "no partition queue"
    return (f"{n} queued message{'' if n == 1 else 's'} of acknowledged writes ({per}) were not yet applied when the "
            "backup began: those writes are not in this backup "
            "(this stack applies them as usual). A message carries one or more writes (group commit), and one being "
            "applied at that moment may already be in the snapshot")


def restored_queued_sentence(q: Mapping[str, Any]) -> str:
    """The same, said by restore from the manifest."""
    if "error" in q or "messages" not in q:
        return ("the writes that were queued but not yet applied when the backup was taken (their number is unknown: "
                "the broker did not answer then)")
    n = int(q["messages"])
    return (f"the writes that were queued but not yet applied when the backup was taken ({n} queued message"
            f"{'' if n == 1 else 's'} of acknowledged writes: {_per_partition(q) or 'no partition queue'}; the "
            "stack backed up applied them, this store does not have them)")


def schema_rank(version: str) -> tuple[int, ...]:
    """Flyway's version order: '5' < '5.1' < '10'."""
    return tuple(int(x) for x in re.split(r"[._]", version) if x.isdigit())


def local_schema_version(root: str) -> str:
    """The newest migration this code has (kv-core/src/main/resources/db/migration/V<n>__*.sql); "" if none."""
    found = [m.group(1) for f in glob.glob(f"{root}/kv-core/src/main/resources/db/migration/V*__*.sql")
             if (m := MIGRATION_FILE.fullmatch(os.path.basename(f)))]
    return max(found, key=schema_rank) if found else ""


def schema_problem(backup_version: str, code_version: str) -> str:
    """Why this code cannot run on a backup's schema ("" when it can: the same version, or an older one that Flyway
    migrates at start)."""
    if not backup_version or not code_version:
        return ""
    if schema_rank(backup_version) > schema_rank(code_version):
        return (f"the backup's schema is version {backup_version}, newer than this code's migrations (up to "
                f"{code_version}): restore it with the kvmesh version that made it")
    return ""


def fresh_problem(run_dir: str) -> str:
    """Why RUN_DIR is not a fresh run folder for a restore ("" when it is): it holds server data or prepared
    servers. A broker's data would be worst: its queued operations would apply on top of the restored store."""
    found = []
    if os.path.isfile(f"{run_dir}/postgres/data/PG_VERSION") or os.path.isdir(f"{run_dir}/postgres/data"):
        found.append("PostgreSQL data (postgres/data)")
    if os.path.isdir(f"{run_dir}/postgres-standby/data"):
        found.append("a PostgreSQL standby (postgres-standby/data)")
    for d in sorted(glob.glob(f"{run_dir}/rabbitmq*/mnesia")):
        if os.path.isdir(d) and os.listdir(d):
            found.append(f"RabbitMQ data ({os.path.relpath(d, run_dir)})")
    if os.path.isfile(f"{run_dir}/servers.state"):
        found.append("prepared servers (servers.state)")
    if not found:
        return ""
    return (f"{run_dir} is not a fresh run folder: it holds {', '.join(found)}. A backup is restored into a new run "
            "folder only (KVMESH_RUN_DIR=/path/to/new/folder ./start.sh restore FILE); nothing was changed")


def counts_mismatch(manifest: Mapping[str, Any], got: Mapping[str, Any]) -> list[str]:
    """The figures of COMPARED that differ between a manifest and the restored database (STATS_SQL's answer)."""
    want = {**manifest.get("counts", {}), "schema_version": manifest.get("schema_version")}
    return [f"{k}: backup {want.get(k)!r}, restored {got.get(k)!r}" for k in COMPARED
            if k in want and want.get(k) != got.get(k)]


def summary_lines(m: Mapping[str, Any]) -> list[str]:
    """What a manifest says the backup holds, for the output of backup and restore."""
    c = m.get("counts", {})
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(c.get("oplog_outcomes", {}).items())) or "none"
    return [
        f"snapshot taken {m.get('snapshot_time', '?')} (the store as of that instant), schema version "
        f"{m.get('schema_version') or '?'}, {m.get('partitions', '?')} partition queue(s)",
        f"keys: {c.get('keys', '?')} ({c.get('keys_live', '?')} live, {c.get('tombstones', '?')} tombstones, "
        f"{c.get('keys_expired', '?')} expired not yet swept); operations: {c.get('oplog_rows', '?')} ({outcomes}), "
        f"the last applied {m.get('last_apply_time') or '-'}; request ids: {c.get('request_ids', '?')} "
        f"({c.get('request_ids_not_applied', '?')} of writes not applied at the snapshot)",
    ]


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(dump: str) -> dict[str, Any] | None:
    """FILE.json, or None when there is none; dies on one that is not a kvmesh manifest."""
    path = manifest_path(dump)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
    except (OSError, ValueError) as e:
        LOG.die(f"{path} is not readable JSON ({e})")
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT:
        LOG.die(f"{path} is not a kvmesh backup manifest (format {MANIFEST_FORMAT})")
    return m


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    x = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        x /= 1024
        if x < 1024 or unit == "GiB":
            break
    return f"{x:.1f} {unit}"


# ---------------------------------------------------------------- PostgreSQL access

def pg_tool(name: str) -> str:
    """A PostgreSQL client of the servers' own version (Debian's /usr/lib/postgresql/<ver>/bin)."""
    d = pg_bindir()
    if d and os.access(f"{d}/{name}", os.X_OK):
        return f"{d}/{name}"
    LOG.die(f"no {name}: PostgreSQL's binaries are missing (scripts/servers.sh install)")


@contextlib.contextmanager
def passfile(run_dir: str, password: str) -> Iterator[dict[str, str]]:
    """A 0600 .pgpass for the kvmesh role in RUN/secrets while the block runs: the password is on no command line
    and in no environment; the environment for libpq (PGPASSFILE) is yielded."""
    sec = f"{run_dir}/secrets"
    os.makedirs(sec, mode=0o700, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix=".pgpass-backup.", dir=sec)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            esc = password.replace("\\", "\\\\").replace(":", "\\:")
            f.write(f"*:*:*:kvmesh:{esc}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(PGPASSFILE=path, PGCONNECT_TIMEOUT="10", PGAPPNAME="kvmesh-backup", PGTZ="UTC")
        yield env
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def conninfo(ports: list[str]) -> str:
    """libpq's connection string for the primary among PORTS (a standby's port may be the second)."""
    hosts = ",".join("127.0.0.1" for _ in ports)
    return f"host={hosts} port={','.join(ports)} user=kvmesh dbname=kvmesh target_session_attrs=read-write"


class PsqlSession:
    """One psql process, fed statements one at a time; each answers one line (-At)."""

    def __init__(self, conn: str, env: dict[str, str]) -> None:
        self.p = subprocess.Popen([pg_tool("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", conn],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=env)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._pump, args=(self.p.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._collect, daemon=True).start()

    @staticmethod
    def _pump(stream: IO[str] | None, q: queue.Queue[str | None]) -> None:
        assert stream is not None
        for line in stream:
            q.put(line.rstrip("\n"))
        q.put(None)

    def _collect(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            self.err.append(line.rstrip("\n"))

    def query(self, sql: str, timeout: float = PSQL_TIMEOUT_S) -> str:
        assert self.p.stdin is not None
        try:
            self.p.stdin.write(" ".join(sql.split()) + ";\n")
            self.p.stdin.flush()
        except OSError as e:
            raise BackupError(self._failure(f"psql: {e}")) from e
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty as e:
            raise BackupError(f"psql did not answer within {timeout:.0f}s") from e
        if line is None:
            raise BackupError(self._failure("psql ended"))
        return line

    def execute(self, sql: str) -> None:
        """A statement without an answer (BEGIN, COMMIT), made to answer one with a marker."""
        if self.query(f"{sql}; SELECT 'ok'") != "ok":
            raise BackupError(f"psql: unexpected answer to {sql}")

    def _failure(self, what: str) -> str:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.p.wait(timeout=5)
        tail = "; ".join(self.err[-3:])
        return f"{what}{': ' + tail if tail else ''}"

    def close(self) -> None:
        if self.p.poll() is None:
            with contextlib.suppress(OSError):
                assert self.p.stdin is not None
                self.p.stdin.close()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


# ---------------------------------------------------------------- backup

def read_queue_depths(stack: Stack) -> QueueDepths:
    """The partition queues' depths, from the broker (a node of a cluster that answers)."""
    run = stack.run
    nodes = paths.rabbitmq_nodes(run, stack.environ)
    prefix = stack.environ.get("KVMESH_AMQP_PREFIX") or "kv"
    last = ""
    for node in range(1, nodes + 1):
        env = dict(stack.environ)
        env.pop("KVMESH_RMQ_INDEX", None)
        if nodes > 1:
            env["KVMESH_RMQ_INDEX"] = str(node)
        try:
            res = subprocess.run([stack.servers_sh(), "rabbitmqctl", run.path, "list_queues", "-q",
                                  "--no-table-headers", "name", "messages_ready", "messages_unacknowledged"],
                                 stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                 timeout=RABBITMQCTL_TIMEOUT_S, env=env)
        except subprocess.TimeoutExpired:
            last = f"rabbitmqctl did not answer within {RABBITMQCTL_TIMEOUT_S:.0f}s"
            continue
        if res.returncode == 0:
            return parse_queue_depths(res.stdout, prefix)
        last = (res.stderr.strip().splitlines() or [f"rabbitmqctl exit {res.returncode}"])[-1][:200]
    return QueueDepths(error=last or "no broker node")


def _pg_ports(stack: Stack) -> list[str]:
    env = stack.run.servers_env()
    ports = [p for p in (env.get("KVMESH_PG_PORT", ""), env.get("KVMESH_PG_STANDBY_PORT", "")) if p]
    if not ports:
        LOG.die(f"no PostgreSQL port in {stack.run.servers_env_file} (is the stack running?)")
    return ports


def _pg_password(stack: Stack) -> str:
    pw = stack.run.servers_env().get("KVMESH_PG_PASSWORD", "")
    if not pw:
        LOG.die(f"no KVMESH_PG_PASSWORD in {stack.run.servers_env_file}")
    return pw


def parse_backup_args(args: list[str]) -> str | None:
    """[FILE] -> FILE or None (the default name)."""
    if len(args) > 1 or (args and args[0].startswith("-")):
        LOG.die("usage: ./start.sh backup [FILE]   (default: RUN/backups/kvmesh-<UTC time>.dump)")
    return args[0] if args else None


def cmd_backup(stack: Stack, args: list[str]) -> int:
    run = stack.run
    target = parse_backup_args(args)
    stack.require_running()
    t_start = time.time()
    dump = os.path.abspath(target) if target else default_backup_file(run.path, t_start)
    if os.path.exists(dump) or os.path.exists(manifest_path(dump)):
        LOG.die(f"{dump} (or its manifest {manifest_path(dump)}) already exists; a backup never overwrites one")
    folder = os.path.dirname(dump)
    if target is None:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    elif not os.path.isdir(folder):
        LOG.die(f"no folder {folder}")
    partitions = _read_partitions_file(run.path)
    LOG.say(f"backup of {run.path} into {dump} (the stack keeps running)")
    t0 = proc.now_ms()
    tmp_dump, tmp_manifest = f"{dump}.tmp-{os.getpid()}", f"{manifest_path(dump)}.tmp-{os.getpid()}"
    session: PsqlSession | None = None
    dumper: subprocess.Popen[bytes] | None = None
    try:
        with passfile(run.path, _pg_password(stack)) as env:
            session = PsqlSession(conninfo(_pg_ports(stack)), env)
            server = session.query("SELECT inet_server_port() || '|' || current_setting('server_version')")
            port, server_version = server.split("|", 1)
            # the broker first, the snapshot right after it: the queued writes of that moment
            depths = read_queue_depths(stack)
            depths_at = time.time()
            session.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            snap_id, snap_iso, snap_epoch = session.query(SNAPSHOT_SQL).split("|")
            LOG.say(f"snapshot {snap_id} taken at {snap_iso} (PostgreSQL {server_version} on 127.0.0.1:{port}); "
                    "pg_dump is writing it")
            old = os.umask(0o077)  # the dump holds every value: 0600
            try:
                dumper = subprocess.Popen(
                    [pg_tool("pg_dump"), "--format=custom", f"--snapshot={snap_id}", "--lock-wait-timeout=30000",
                     f"--file={tmp_dump}", f"host=127.0.0.1 port={port} user=kvmesh dbname=kvmesh"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
            finally:
                os.umask(old)
            stats = json.loads(session.query(STATS_SQL, timeout=3600))
            _, err = dumper.communicate()
            if dumper.returncode != 0:
                raise BackupError(f"pg_dump failed (exit {dumper.returncode}): "
                                  f"{err.decode(errors='replace').strip()[-500:]}")
            session.execute("COMMIT")
        size = os.path.getsize(tmp_dump)
        manifest: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "file": os.path.basename(dump),
            "bytes": size,
            "sha256": sha256_file(tmp_dump),
            "snapshot_time": snap_iso,
            "snapshot_epoch": float(snap_epoch),
            "finished_time": iso_utc(time.time()),
            "source_run_dir": run.path,
            "postgres_version": server_version,
            "schema_version": stats.pop("schema_version"),
            "partitions": partitions,
            "last_apply_time": stats.pop("last_apply_time"),
            "last_update_time": stats.pop("last_update_time"),
            "counts": stats,
            "queued_at_start": {**depths.to_json(), "read_at": iso_utc(depths_at),
                                "read_before_snapshot_s": round(float(snap_epoch) - depths_at, 3)},
            "not_in_backup": ["writes acknowledged and queued but not applied when the snapshot was taken",
                              "the Redis cache (a restored stack starts with an empty one)",
                              "the auth signing key and tokens (each stack has its own)",
                              "the stores' credentials (a restored stack generates new ones)"],
        }
        _write_json(tmp_manifest, manifest)
        _fsync(tmp_dump)
        os.replace(tmp_manifest, manifest_path(dump))
        os.replace(tmp_dump, dump)
        _fsync_dir(folder)
    except (BackupError, OSError, ValueError) as e:
        LOG.die(f"backup failed, nothing written: {e}")
    finally:
        if dumper is not None and dumper.poll() is None:
            dumper.kill()
            dumper.wait()
        if session is not None:
            session.close()
        for f in (tmp_dump, tmp_manifest):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f)
    LOG.say(f"backup written in {proc.elapsed(t0)}: {dump} ({human_bytes(size)}, sha256 {manifest['sha256'][:16]}…) "
            f"and its manifest {manifest_path(dump)}")
    for line in summary_lines(manifest):
        LOG.say(f"  {line}")
    LOG.say(queued_sentence(depths))
    if depths.dead:
        LOG.say(f"the dead-letter queue holds {depths.dead} message(s) of operations that could never apply; they are "
                "not in the backup either")
    LOG.say("not in a backup: the Redis cache (a restored stack fills it from PostgreSQL), the auth signing key, the "
            "stores' credentials (a restore generates new ones)")
    LOG.say(f"restore: KVMESH_RUN_DIR=/path/to/new/folder ./start.sh restore {dump}")
    return 0


def _read_partitions_file(run_dir: str) -> int | None:
    try:
        with open(f"{run_dir}/partitions", encoding="utf-8") as f:
            n = f.read().strip()
    except OSError:
        return None
    return int(n) if n.isdigit() else None


def _write_json(path: str, data: Mapping[str, Any]) -> None:
    old = os.umask(0o077)
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
    finally:
        os.umask(old)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        _fsync(path)


# ---------------------------------------------------------------- restore

def parse_restore_args(args: list[str]) -> str:
    if len(args) != 1 or args[0].startswith("-"):
        LOG.die("usage: KVMESH_RUN_DIR=/path/to/new/folder ./start.sh restore FILE")
    return os.path.abspath(args[0])


def check_backup(dump: str) -> dict[str, Any] | None:
    """The backup file is there, whole (its manifest's size and sha256) and an archive pg_restore reads; its
    manifest (None without one)."""
    if not os.path.isfile(dump):
        LOG.die(f"no backup file {dump}")
    m = read_manifest(dump)
    if m is None:
        LOG.warn(f"no manifest {manifest_path(dump)}: restoring without it (nothing to check the counts against)")
    else:
        if m.get("bytes") is not None and os.path.getsize(dump) != m["bytes"]:
            LOG.die(f"{dump} has {os.path.getsize(dump)} bytes, its manifest says {m['bytes']}: not the whole backup")
        if m.get("sha256") and sha256_file(dump) != m["sha256"]:
            LOG.die(f"{dump} does not match the sha256 of its manifest: the file is damaged or another one")
    res = subprocess.run([pg_tool("pg_restore"), "--list", dump], stdin=subprocess.DEVNULL, capture_output=True,
                         text=True)
    if res.returncode != 0:
        LOG.die(f"{dump} is not a pg_dump archive pg_restore can read: {res.stderr.strip()[-300:]}")
    if not re.search(r"TABLE DATA \S+ kv_oplog ", res.stdout):
        LOG.die(f"{dump} is not a kvmesh backup (no kv_oplog table in it)")
    return m


def _servers(stack: Stack, *args: str, env: Mapping[str, str] | None = None) -> bool:
    return subprocess.run([stack.servers_sh(), *args], stdin=subprocess.DEVNULL,
                          env=dict(env if env is not None else stack.environ)).returncode == 0


def load_dump(stack: Stack, dump: str) -> dict[str, Any]:
    """pg_restore into the prepared, running PostgreSQL of this run folder, in one transaction; the restored
    figures (STATS_SQL)."""
    run = stack.run
    port = run.servers_port("KVMESH_PG_PORT")
    with passfile(run.path, _pg_password(stack)) as env:
        conn = f"host=127.0.0.1 port={port} user=kvmesh dbname=kvmesh"
        log = f"{run.logs}/restore.log"
        with open(log, "w", encoding="utf-8") as out:
            rc = subprocess.run([pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--single-transaction",
                                 "--exit-on-error", f"--dbname={conn}", dump], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env).returncode
        if rc != 0:
            for line in proc.tail(log, 15):
                print(line, file=sys.stderr)
            raise BackupError(f"pg_restore failed (exit {rc}; log: {log})")
        res = subprocess.run([pg_tool("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c",
                              " ".join(STATS_SQL.split()), conn], stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, env=env, timeout=3600)
        if res.returncode != 0:
            raise BackupError(f"could not read the restored database: {res.stderr.strip()[-300:]}")
        got: dict[str, Any] = json.loads(res.stdout)
        return got


def cmd_restore(stack: Stack, args: list[str]) -> int:
    s, run = stack.s, stack.run
    dump = parse_restore_args(args)
    t0 = proc.now_ms()
    m = check_backup(dump)
    problem = schema_problem(str((m or {}).get("schema_version") or ""), local_schema_version(s.root))
    if problem:
        LOG.die(problem)
    run.lock()
    if stack.sv.running() or stack.leftover_pids():
        LOG.die(f"a stack is running from {run.path}: a backup is restored into a new run folder only; nothing was "
                "changed")
    problem = fresh_problem(run.path)
    if problem:
        LOG.die(problem)
    stack.check_ports_free(s.all_ports())
    if not stack.environ.get("KVMESH_PARTITIONS") and m and m.get("partitions"):
        stack.environ["KVMESH_PARTITIONS"] = str(m["partitions"])
    LOG.say(f"restoring {dump} into {run.path}")
    for line in summary_lines(m) if m else []:
        LOG.say(f"  {line}")
    if not _servers(stack, "install"):
        LOG.die("scripts/servers.sh install failed")
    # PostgreSQL alone first, without a standby (a synchronous standby not yet running would hold every commit):
    # ./start.sh below makes the standby from the restored primary when KVMESH_PG_STANDBY=1
    env = dict(stack.environ, KVMESH_PG_STANDBY="0")
    LOG.say("preparing the servers' folders (new credentials) and starting PostgreSQL alone")
    if not _servers(stack, "prepare", run.path, env=env):
        LOG.die(f"scripts/servers.sh prepare failed (logs under {run.logs}); delete {run.path} before trying again")
    try:
        if not _servers(stack, "ctl", run.path, "postgres", "start", env=env):
            raise BackupError("PostgreSQL did not start")
        t1 = proc.now_ms()
        got = load_dump(stack, dump)
        bad = counts_mismatch(m, got) if m else []
        if bad:
            raise BackupError("the restored database differs from the manifest: " + "; ".join(bad))
        LOG.say(f"pg_restore loaded the backup in {proc.elapsed(t1)}: {got['keys']} keys, {got['oplog_rows']} "
                f"operations, {got['request_ids']} request ids, schema version {got['schema_version']}"
                + (" (as the manifest says)" if m else ""))
    except BackupError as e:
        _servers(stack, "stop", run.path)
        LOG.die(f"restore failed: {e}. {run.path} now holds a partial restore: delete it before trying again")
    except KeyboardInterrupt:
        print(f"[kvmesh] interrupted; stopping PostgreSQL. {run.path} holds a partial restore: delete it before trying "
              "again", file=sys.stderr, flush=True)
        _servers(stack, "stop", run.path)
        raise
    if not _servers(stack, "ctl", run.path, "postgres", "stop", env=env):
        _servers(stack, "stop", run.path)
        LOG.die(f"PostgreSQL did not stop; delete {run.path} before trying again")
    LOG.say("starting the whole stack on the restored store (as ./start.sh)")
    rc = stack.cmd_up()
    if rc != 0:
        LOG.error(f"the restored store is in {run.path}, but the stack did not start: ./start.sh (same KVMESH_RUN_DIR) "
                  "tries again")
        return rc
    LOG.say(f"restore done in {proc.elapsed(t0)}: {dump} -> {run.path}")
    for line in summary_lines(m) if m else []:
        LOG.say(f"  restored: {line}")
    if m:
        LOG.say(f"  not restored: {restored_queued_sentence(m.get('queued_at_start', {}))}")
        n = (m.get("counts") or {}).get("request_ids_not_applied", 0)
        if n:
            LOG.say(f"  {n} request id(s) were recorded for writes not applied at the snapshot: they are in the "
                    "restored store, their writes are not (GetOperation may answer PENDING for them; a client that "
                    "retries such a write with its request id gets it applied here)")
    LOG.say("  not restored: the Redis cache (empty: reads fill it from PostgreSQL), the auth signing key (this stack "
            "has its own: tokens of the old stack are not valid here), the credentials (new ones in "
            f"{run.secrets}/credentials.env)")
    return 0
