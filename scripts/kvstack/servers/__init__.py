"""The throwaway PostgreSQL, Redis and RabbitMQ servers of kvmesh (tests and the native stack): `scripts/servers.sh`.

- `paths`: the run folder's layout and lock; `state`: servers.state, servers.env and the other state files;
- `credentials`: the generated passwords; `install`: the server binaries;
- `postgres`, `standby`, `redis`, `rabbitmq` (one node or a cluster): each server's set-up, start, stop, run;
- `cli`: the commands (`python3 -m kvstack.servers ARGS`).
"""
