"""What every part of scripts/servers.sh shares: the log, running as a service user, spawning daemons, templates."""
from __future__ import annotations

import os
import pwd
import re
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import IO

import jinja2

from kvstack import ROOT, proc

LOG = proc.Log("servers")
SELF = os.path.realpath(os.path.join(ROOT, "scripts", "servers.sh"))
"""The wrapper script (servers.env's KVMESH_TEST_SERVERS, the messages' `run: ... install`)."""
SELF_NAME = "servers.sh"
TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "templates", "servers")
PORT_RE = re.compile(r"^[0-9]+$")
RUN_PROC_COMMS = frozenset({"postgres", "postmaster", "redis-server", "redis-check-rdb", "beam.smp", "erl_child_setup",
                            "inet_gethost", "rabbitmq-server", "erl", "setsid", "setpriv"})

_jinja: jinja2.Environment | None = None


def is_root() -> bool:
    return os.geteuid() == 0


def start_timeout(env: Mapping[str, str] | None = None) -> int:
    """KVMESH_SERVERS_START_TIMEOUT (seconds, default 60)."""
    raw = (os.environ if env is None else env).get("KVMESH_SERVERS_START_TIMEOUT", "") or "60"
    if not PORT_RE.match(raw):
        LOG.die(f"KVMESH_SERVERS_START_TIMEOUT must be a number of seconds (got '{raw}')")
    return int(raw)


def render(name: str, **values: object) -> str:
    """One template of templates/servers (StrictUndefined: a missing value is an error)."""
    global _jinja
    if _jinja is None:
        _jinja = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                                    keep_trailing_newline=True, autoescape=False)
    return _jinja.get_template(name).render(**values)


# ---------------------------------------------------------------- users

def uid_gid(user: str) -> tuple[int, int]:
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


def as_user_cmd(user: str, home: str, cmd: Sequence[str], envs: Sequence[str] = ()) -> list[str]:
    """The command line that runs cmd as a service user (postgres / rabbitmq) with a clean environment:
    HOME, the system PATH, LANG/LC_ALL C.UTF-8 and envs (VAR=value). Not root: only the clean environment."""
    full = [f"HOME={home}", f"PATH={proc.SYS_PATH}", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", *envs]
    if is_root():
        uid, gid = uid_gid(user)
        return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "--", "env", "-i", *full, *cmd]
    return ["env", "-i", *full, *cmd]


def own(user: str, *paths: str) -> None:
    """chown USER:its group (no-op unless root)."""
    if not is_root():
        return
    uid, gid = uid_gid(user)
    for p in paths:
        os.chown(p, uid, gid)


def current_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def write_secret_file(user: str, path: str, text: str) -> None:
    """text into path (via path.tmp), mode 0600, owned by user (a service user when root)."""
    tmp = path + ".tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    own(user, tmp)
    os.replace(tmp, path)


def ensure_file(path: str, text: str = "") -> None:
    """Creates path with text unless it exists (the shell's `[ -f F ] || echo ... >F`)."""
    if not os.path.isfile(path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


def touch(path: str) -> None:
    with open(path, "a", encoding="utf-8"):
        pass
    os.utime(path)


def nonempty(path: str) -> bool:
    """The shell's `[ -s PATH ]`."""
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False


def dir_nonempty(path: str) -> bool:
    """The shell's `[ -n "$(ls -A PATH)" ]`."""
    try:
        return bool(os.listdir(path))
    except OSError:
        return False


# ---------------------------------------------------------------- processes

def spawn(logf: str, cmd: Sequence[str], cwd: str | None = None) -> int:
    """Runs a daemon-starting command with stdin /dev/null, output appended to logf and no inherited fd above 2
    (close_fds), so no daemon keeps a caller's pipe or our lock open. Returns its exit code."""
    with open(logf, "ab") as out:
        try:
            return subprocess.run(list(cmd), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  close_fds=True, cwd=cwd, check=False).returncode
        except OSError as e:
            out.write(f"{cmd[0]}: {e}\n".encode())
            return 127


def run_timeout(secs: float, cmd: Sequence[str], logf: str | None = None, env: Mapping[str, str] | None = None,
                capture: bool = False) -> tuple[int, str]:
    """Like coreutils `timeout SECS CMD` (in its own process group, TERM to the group after secs: rc 124), stdin
    /dev/null; output appended to logf, or captured (stdout+stderr) with capture, else discarded."""
    out_f = open(logf, "ab") if logf else None  # noqa: SIM115
    try:
        stdout: int | IO[bytes] = out_f if out_f else (subprocess.PIPE if capture else subprocess.DEVNULL)
        try:
            p = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, stdout=stdout,
                                 stderr=subprocess.STDOUT, close_fds=True, process_group=0,
                                 env=None if env is None else dict(env))
        except OSError as e:
            return 127, f"{cmd[0]}: {e}"
        try:
            data, _ = p.communicate(timeout=secs)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except OSError:
                pass
            data, _ = p.communicate()
            return 124, (data or b"").decode(errors="replace")
        return p.returncode, (data or b"").decode(errors="replace")
    finally:
        if out_f:
            out_f.close()


def quiet(cmd: Sequence[str], env: Mapping[str, str] | None = None, stdin_text: str | None = None,
          timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Runs cmd, stdin /dev/null (or stdin_text), output captured (a missing program: rc 127)."""
    try:
        return subprocess.run(list(cmd), input=stdin_text, stdin=None if stdin_text is not None else subprocess.DEVNULL,
                              capture_output=True, text=True, env=None if env is None else dict(env),
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(list(cmd), 124, str(e.stdout or ""), str(e.stderr or ""))
    except OSError as e:
        return subprocess.CompletedProcess(list(cmd), 127, "", str(e))


def run_logged(logf: str, cmd: Sequence[str], stdin_text: str | None = None,
               env: Mapping[str, str] | None = None) -> bool:
    """Runs cmd (stdin /dev/null or stdin_text), output appended to logf; True on exit 0."""
    with open(logf, "ab") as out:
        try:
            return subprocess.run(list(cmd), input=None if stdin_text is None else stdin_text.encode(),
                                  stdin=subprocess.DEVNULL if stdin_text is None else None, stdout=out,
                                  stderr=subprocess.STDOUT, env=None if env is None else dict(env),
                                  check=False).returncode == 0
        except OSError as e:
            out.write(f"{cmd[0]}: {e}\n".encode())
            return False


def tail_log(label: str, *files: str) -> None:
    """The last 25 lines of each non-empty file, on stderr."""
    for f in files:
        if not nonempty(f):
            continue
        LOG.info(f"---- {label}: last lines of {f} ----")
        for line in proc.tail(f, 25):
            print(line, file=sys.stderr)


def run_procs(run_dir: str) -> list[tuple[int, str]]:
    """(pid, comm) of the server processes working inside run_dir (postgres keeps cwd = its data folder, redis
    RUN_DIR/redis, beam RUN_DIR/rabbitmq*). epmd is never listed."""
    out: list[tuple[int, str]] = []
    me = os.getpid()
    for pid in proc.all_pids():
        if pid == me:
            continue
        d = proc.cwd(pid)
        if d != run_dir and not d.startswith(run_dir + "/"):
            continue
        c = proc.comm(pid)
        if c in RUN_PROC_COMMS and proc.pid_alive(pid):
            out.append((pid, c))
    return out


def exec_cmd(cmd: Sequence[str], cwd: str | None = None) -> None:
    """Becomes cmd (the shell's `exec`): the supervisor's child is the server chain itself."""
    if cwd:
        os.chdir(cwd)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(cmd[0], list(cmd))
    except OSError as e:
        LOG.die(f"cannot run {cmd[0]}: {e}", 126 if isinstance(e, PermissionError) else 127)
