"""`./start.sh [COMMAND]` (python3 -m kvstack.stack): native mode under one supervisord, or docker compose."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import MutableMapping

from kvstack import ROOT, proc
from kvstack.stack import backup, commands, settings
from kvstack.stack.commands import Stack
from kvstack.stack.settings import LOG


def compose(root: str, *args: str) -> int:
    return subprocess.run(["docker", "compose", *args], cwd=root).returncode


def docker_main(cmd: str, args: list[str], s: settings.Settings, environ: MutableMapping[str, str]) -> int:
    root = s.root
    if cmd in ("up", "start"):
        LOG.say("docker mode (docker compose)")
        commands.ensure_compose_secrets(root, environ)
        rc = subprocess.run([f"{root}/scripts/docs-ui.sh"]).returncode
        if rc == 0:
            rc = compose(root, "up", "-d", "--build", "--wait")
        if rc == 0:
            commands.print_urls(s, None, None)
        return rc
    if cmd in ("stop", "down"):
        return compose(root, "down")
    if cmd == "status":
        return compose(root, "ps")
    if cmd == "logs":
        return compose(root, "logs", "--tail", "200", *args)
    if cmd == "restart":
        return compose(root, "restart", *args)
    if cmd in ("-h", "--help", "help"):
        sys.stdout.write(commands.help_text(root))
        return 0
    if cmd in ("backup", "restore"):
        LOG.die(f"{cmd} works in native mode (KVMESH_MODE=native); in docker mode use pg_dump / pg_restore in the "
                "postgres container")
    LOG.die(f"unknown command '{cmd}' (up|stop|status|logs|restart)")


def native_main(cmd: str, args: list[str], s: settings.Settings) -> int:
    if cmd in ("-h", "--help", "help"):
        sys.stdout.write(commands.help_text(s.root))
        return 0
    if cmd not in ("up", "start", "stop", "down", "status", "logs", "restart", "upgrade", "token", "pg-switchover",
                   "backup", "restore"):
        LOG.die(f"unknown command '{cmd}' (up|stop|status|logs|restart|upgrade|token|pg-switchover|backup|restore)")
    stack = Stack(s)
    if cmd in ("up", "start"):
        return stack.cmd_up()
    if cmd in ("stop", "down"):
        return stack.cmd_stop()
    if cmd == "status":
        return stack.cmd_status()
    if cmd == "logs":
        return stack.cmd_logs(args)
    if cmd == "restart":
        return stack.cmd_restart(args)
    if cmd == "upgrade":
        return stack.cmd_upgrade(args)
    if cmd == "token":
        return stack.cmd_token(args)
    if cmd == "backup":
        return backup.cmd_backup(stack, args)
    if cmd == "restore":
        return backup.cmd_restore(stack, args)
    return stack.cmd_pg_switchover(args)


def main(argv: list[str] | None = None, root: str = ROOT) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # our lines and the children's keep their order in one pipe
    proc.ensure_sys_path()
    cmd, args = (argv[0], argv[1:]) if argv else ("up", [])
    if cmd == "__nginx":  # internal: supervisord's command for nginx
        commands.run_nginx(args[0] if args else "")
    try:
        s = settings.from_environ(root, os.environ)
        if settings.docker_usable(s.mode):
            return docker_main(cmd, args, s, os.environ)
        return native_main(cmd, args, s)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 141
