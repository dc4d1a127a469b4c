"""kvmesh's stack manager: every decision start.sh and scripts/servers.sh used to make in shell.

- `kvstack.proc`: processes, ports, pids, waiting (shared by both halves);
- `kvstack.servers`: the throwaway PostgreSQL, Redis and RabbitMQ servers (`scripts/servers.sh`);
- `kvstack.stack`: the whole native stack under one supervisord (`./start.sh`).

`start.sh` and `scripts/servers.sh` only make sure a Python with Jinja2 exists (scripts/lib.sh) and hand over:
`python3 -m kvstack.stack ARGS` and `python3 -m kvstack.servers ARGS`, with scripts/ on PYTHONPATH.
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
"""The clone's top folder (where start.sh lives)."""

# kvstack_exec (scripts/lib.sh) put scripts/ on PYTHONPATH to start this package; the programs it starts (supervisord,
# the servers, the JVMs) need not inherit that entry.
_SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_kept = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
         if p and os.path.realpath(p) != os.path.realpath(_SCRIPTS)]
if _kept:
    os.environ["PYTHONPATH"] = os.pathsep.join(_kept)
else:
    os.environ.pop("PYTHONPATH", None)
