"""The run folder's configuration: conf/supervisord.conf and conf/prometheus.yml (Jinja2 templates under
kvstack/templates/stack), conf/envoy.yaml and conf/nginx.conf from the repo's templates (scripts/render-config.sh's
rules: every ${KVMESH_*} replaced, an unset one is an error, the #@ENDPOINTS@ line expanded)."""
from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import jinja2

from kvstack import ROOT
from kvstack.stack.paths import RunDir
from kvstack.stack.settings import Settings

TEMPLATES = os.path.join(ROOT, "scripts", "kvstack", "templates", "stack")
PID_WRAPPER = 'echo $$ >"$0" && exec "$@"'
# A Java part with the JDK's ahead-of-time cache (JEP 483/514/515, JDK 25+): $1 is the cache beside the release's jar,
# $2 the java binary. A cache there is used (classes loaded and linked, method profiles: the JVM is serving about 2.5 s
# sooner). Else, when a training run left its configuration ($1.config), the cache is assembled from it in the
# background at nice 19 (into a temporary file, renamed when complete) while this process runs without; else the
# first process of the release to take the .training lock records the configuration while it serves (written when it
# stops: about a second; the one-step -XX:AOTCacheOutput would assemble the cache there, 15-20 s more of downtime).
# An assembly killed by a stop leaves its lock, stale after 10 minutes.
# A stale or broken cache is refused by the JVM, which then runs without it (AOTMode auto).
AOT_WRAPPER = ('echo $$ >"$0" && c="$1" && j="$2" && shift 2 && '
               'if [ -s "$c" ]; then exec "$j" "-XX:AOTCache=$c" "$@"; '
               'elif [ -s "$c.config" ]; then '
               'find "$c.assembling" -maxdepth 0 -mmin +10 -exec rmdir {} + 2>/dev/null; '
               'if mkdir "$c.assembling" 2>/dev/null; then '
               '(nice -n 19 "$j" -XX:AOTMode=create "-XX:AOTConfiguration=$c.config" "-XX:AOTCache=$c.$$.tmp" "$@" '
               '>"$c.assembly.log" 2>&1 && mv -f "$c.$$.tmp" "$c"; rm -f "$c.$$.tmp"; rmdir "$c.assembling") '
               '</dev/null >/dev/null 2>&1 & fi; exec "$j" "$@"; '
               'elif mkdir "$c.training" 2>/dev/null; then '
               'exec "$j" -XX:AOTMode=record "-XX:AOTConfiguration=$c.config" "$@"; '
               'else exec "$j" "$@"; fi')


# ---------------------------------------------------------------- supervisord.conf quoting

def sv_word(word: str) -> str:
    """WORD as one shell-like word for command=: double-quoted, \\ and " escaped, % doubled (supervisord expands
    %(name)s in every value)."""
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def sv_words(words: Sequence[str]) -> str:
    return " ".join(sv_word(w) for w in words)


def sv_path(path: str) -> str:
    return path.replace("%", "%%")


def sv_env_value(value: str) -> str:
    """An environment= value: quoted (commas), % doubled."""
    return '"' + value.replace("%", "%%") + '"'


def sv_env(env: Sequence[tuple[str, str]]) -> str:
    return ",".join(f"{name}={sv_env_value(value)}" for name, value in env)


@dataclass
class Program:
    name: str
    priority: int
    stopsignal: str
    stopwaitsecs: int
    log: str
    command: list[str]
    env: list[tuple[str, str]] = field(default_factory=list)


def with_pidfile(run: RunDir, part: str) -> list[str]:
    """A shell writes its own pid to pids/PART.pid, then becomes the program (exec keeps the pid)."""
    return ["/bin/sh", "-c", PID_WRAPPER, f"{run.pids}/{part}.pid"]


def jdk_major(java_home: str) -> int:
    """The feature release of the JDK at java_home (its release file's JAVA_VERSION), 0 when unknown."""
    try:
        with open(os.path.join(java_home, "release"), encoding="utf-8") as f:
            m = re.search(r'^JAVA_VERSION="(?:1\.)?([0-9]+)', f.read(), re.M)
    except OSError:
        return 0
    return int(m.group(1)) if m else 0


def java_command(run: RunDir, part: str, java: Sequence[str], jar: str, aot: bool) -> list[str]:
    """PART's command line: its pid file, JAVA (binary and options), then -jar JAR; with AOT the JDK's cache beside the
    jar (AOT_WRAPPER)."""
    args = [*java[1:], f"-Dkvmesh.run={run.path}", f"-Dkvmesh.part={part}", "-jar", jar]
    if aot:
        return ["/bin/sh", "-c", AOT_WRAPPER, f"{run.pids}/{part}.pid", os.path.splitext(jar)[0] + ".aot", java[0],
                *args]
    return [*with_pidfile(run, part), java[0], *args]


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), keep_trailing_newline=True, trim_blocks=True,
                             undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters.update(sv_path=sv_path, sv_words=sv_words, sv_env=sv_env,
                       quoted_targets=lambda ports: ", ".join(f"'127.0.0.1:{p}'" for p in ports))
    return env


@dataclass
class Binaries:
    java_home: str
    envoy: str
    jar_service: str
    jar_consumer: str


# KVMESH_VIA_PROXY (the fault suite's network partitions, scripts/faults/netproxy.py): a server's port and the
# variables of a Java part that name it
VIA_PROXY_VARS = {"postgres": ("KVMESH_PG_PORT", ("KVMESH_PG_URL",)),
                  "rabbitmq": ("KVMESH_AMQP_PORT", ("KVMESH_AMQP_URI", "KVMESH_AMQP_ADDRESSES")),
                  "redis": ("KVMESH_REDIS_PORT", ("KVMESH_REDIS_URI",))}
VIA_PROXY_ITEM = re.compile(r"(kv-(?:service|consumer)-[1-9][0-9]*):(postgres|rabbitmq|redis)=([1-9][0-9]{0,4})")


def via_proxy(spec: str) -> dict[str, dict[str, str]]:
    """KVMESH_VIA_PROXY, "PART:SERVER=PORT,...": part -> server -> the loopback port PART reaches SERVER through."""
    routes: dict[str, dict[str, str]] = {}
    for item in (x.strip() for x in spec.split(",")):
        if not item:
            continue
        m = VIA_PROXY_ITEM.fullmatch(item)
        if not m:
            raise RenderError(f"KVMESH_VIA_PROXY: '{item}' is not PART:SERVER=PORT (PART kv-service-N or "
                              "kv-consumer-N, SERVER postgres, rabbitmq or redis)")
        routes.setdefault(m[1], {})[m[2]] = m[3]
    return routes


def proxied_env(env: Sequence[tuple[str, str]], servers_env: Mapping[str, str],
                routes: Mapping[str, str]) -> list[tuple[str, str]]:
    """ENV with each routed server's 127.0.0.1:PORT replaced by the proxy's port in the variables that name it."""
    out = list(env)
    for server, port in routes.items():
        port_var, names = VIA_PROXY_VARS[server]
        real = servers_env.get(port_var, "")
        if real:
            out = [(n, v.replace(f"127.0.0.1:{real}", f"127.0.0.1:{port}") if n in names else v) for n, v in out]
    return out


def supervisor_programs(s: Settings, run: RunDir, bins: Binaries, rabbit_parts: Sequence[str],
                        servers_env: Mapping[str, str], environ: Mapping[str, str]) -> list[Program]:
    """Every part as a supervisord program; priorities only order the first start: servers, Java, edge."""
    rd, logs = run.path, run.logs
    servers = os.path.join(s.root, "scripts", "servers.sh")
    base_env = list(servers_env.items())  # the servers' addresses and credentials for the Java processes
    routes = via_proxy(environ.get("KVMESH_VIA_PROXY", ""))
    java = [f"{bins.java_home}/bin/java", "-XX:+ExitOnOutOfMemoryError", *s.java_opts.split()]
    aot = s.aot == "on" and jdk_major(bins.java_home) >= 25
    # PostgreSQL stops on SIGINT (fast shutdown: SIGTERM would wait for every pooled connection to close)
    progs = [Program("postgres", 10, "INT", 30, f"{logs}/postgres.log", [servers, "run", rd, "postgres"]),
             Program("redis", 10, "TERM", 30, f"{logs}/redis-console.log", [servers, "run", rd, "redis"])]
    if servers_env.get("KVMESH_PG_STANDBY_PORT"):
        progs.append(Program("postgres-standby", 10, "INT", 30, f"{logs}/postgres-standby.log",
                             [servers, "run", rd, "postgres-standby"]))
    for part in rabbit_parts:
        progs.append(Program(part, 10, "TERM", 45, f"{logs}/{part}-console.log", [servers, "run", rd, part]))
    for i in range(1, s.replicas + 1):
        part = f"kv-service-{i}"
        env = [*base_env, ("KVMESH_GRPC_BIND", "127.0.0.1"), ("KVMESH_GRPC_PORT", s.replica_ports[i - 1]),
               ("KVMESH_AUTH", s.auth)]
        if s.auth != "off":
            env.append(("KVMESH_AUTH_JWKS_FILE", f"{run.secrets}/auth-jwks.json"))
        env += [("KVMESH_ADMIN_BIND", "127.0.0.1"), ("KVMESH_ADMIN_PORT", s.replica_admin_ports[i - 1]),
                ("KVMESH_INSTANCE", part)]
        progs.append(Program(part, 20, "TERM", 30, f"{logs}/{part}.log",
                             java_command(run, part, java, bins.jar_service, aot),
                             proxied_env(env, servers_env, routes.get(part, {}))))
    for i in range(1, s.consumers + 1):
        part = f"kv-consumer-{i}"
        env = [*base_env, ("KVMESH_CONSUMER_HTTP_BIND", "127.0.0.1"),
               ("KVMESH_CONSUMER_HTTP_PORT", s.consumer_ports[i - 1]), ("KVMESH_INSTANCE", part)]
        progs.append(Program(part, 20, "TERM", 30, f"{logs}/{part}.log",
                             java_command(run, part, java, bins.jar_consumer, aot),
                             proxied_env(env, servers_env, routes.get(part, {}))))
    # Hot restart is off: a supervisor restarts Envoy instead, and without shared memory stacks need no base ids
    progs.append(Program("envoy", 30, "TERM", 15, f"{logs}/envoy.log",
                         [*with_pidfile(run, "envoy"), bins.envoy, "-c", f"{run.conf}/envoy.yaml", "--concurrency",
                          environ.get("KVMESH_ENVOY_CONCURRENCY") or "2", "--disable-hot-restart", "--log-level",
                          "warn"]))
    # nginx runs through `start.sh __nginx` (commands.run_nginx); SIGQUIT: graceful, bounded by worker_shutdown_timeout
    progs.append(Program("nginx", 30, "QUIT", 15, f"{logs}/nginx.log",
                         [os.path.join(s.root, "start.sh"), "__nginx", rd]))
    if s.prometheus == "1":
        progs.append(Program("prometheus", 40, "TERM", 15, f"{logs}/prometheus.log",
                             ["prometheus", f"--config.file={run.conf}/prometheus.yml",
                              f"--storage.tsdb.path={rd}/prometheus", "--storage.tsdb.retention.time=2d",
                              f"--web.listen-address=127.0.0.1:{s.prom_port}"]))
    return progs


def supervisor_conf_text(run: RunDir, programs: Sequence[Program], root_user: bool | None = None) -> str:
    root_user = os.geteuid() == 0 if root_user is None else root_user
    identifier = re.sub(r"[^A-Za-z0-9_.\n-]", "-", os.path.basename(run.path))
    return _env().get_template("supervisord.conf.j2").render(
        run_dir=run.path, sock=run.sv_sock, logs=run.logs, pidfile=run.sv_pidfile, identifier=identifier,
        root=root_user, programs=programs)


def write_private(path: str, text: str) -> None:
    """Writes path atomically with mode 0600 (supervisord.conf holds the stores' passwords)."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def prometheus_yml_text(s: Settings, run: RunDir) -> str:
    """Prometheus scrapes every replica and consumer at /metrics and Envoy's /stats/prometheus, every 2 s."""
    return _env().get_template("prometheus.yml.j2").render(
        run_dir=run.path, replicas=s.replica_admin_ports[: s.replicas], consumers=s.consumer_ports[: s.consumers],
        admin_port=s.admin_port)


# ---------------------------------------------------------------- scripts/render-config.sh's rules

class RenderError(Exception):
    pass


PLACEHOLDER = re.compile(r"\$\{(KVMESH_[A-Z0-9_]*)\}")


def render_template_text(tmpl_path: str, environ: Mapping[str, str]) -> str:
    """TEMPLATE rendered as scripts/render-config.sh renders it (RenderError with its message otherwise)."""
    try:
        with open(tmpl_path, encoding="utf-8", newline="\n") as f:
            text = f.read()
    except OSError as e:
        raise RenderError(f"render-config: cannot read {tmpl_path}") from e
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out: list[str] = []
    for line in lines:
        if line.lstrip(" ") == "#@ENDPOINTS@":
            indent = line.split("#", 1)[0]
            ups = environ.get("KVMESH_ENVOY_UPSTREAMS", "")
            if not ups:
                raise RenderError("render-config: KVMESH_ENVOY_UPSTREAMS is empty")
            fields = ups.split(",")
            if fields[-1] == "":
                fields.pop()
            for hp in fields:
                host, port = hp.rsplit(":", 1)[0], hp.rsplit(":", 1)[-1]
                out += [f"{indent}- endpoint:", f"{indent}    address:",
                        f'{indent}      socket_address: {{ address: "{host}", port_value: {port} }}']
        else:
            out.append(line)
    rendered = "".join(x + "\n" for x in out)
    for name in sorted(set(PLACEHOLDER.findall(rendered))):
        if name not in environ:
            raise RenderError(f"render-config: {tmpl_path} needs ${name}, which is not set")
        rendered = rendered.replace("${" + name + "}", environ[name])
    return rendered


def render_template(tmpl_path: str, out_path: str, environ: Mapping[str, str]) -> None:
    text = render_template_text(tmpl_path, environ)
    tmp = f"{out_path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, out_path)


def edge_environ(s: Settings, run: RunDir, descriptor: str, environ: Mapping[str, str]) -> tuple[dict[str, str],
                                                                                                   dict[str, str]]:
    """The environments start.sh rendered envoy.yaml and nginx.conf with (the process's own plus these)."""
    upstreams = ",".join(f"127.0.0.1:{p}" for p in s.replica_ports[: s.replicas])
    envoy = dict(environ, KVMESH_ENVOY_BIND="127.0.0.1", KVMESH_ENVOY_PORT=s.envoy_port,
                 KVMESH_ENVOY_ADMIN_PORT=s.admin_port, KVMESH_DESCRIPTOR=descriptor, KVMESH_ENVOY_DNS="STATIC",
                 KVMESH_ENVOY_UPSTREAMS=upstreams, KVMESH_ENVOY_ACCESS_LOG=f"{run.logs}/envoy-access.log",
                 KVMESH_ENVOY_HC_LOG=f"{run.logs}/envoy-health.log")
    nginx = dict(environ, KVMESH_HTTP_BIND=s.http_bind, KVMESH_HTTP_PORT=s.http_port,
                 KVMESH_ENVOY_UPSTREAM=f"127.0.0.1:{s.envoy_port}", KVMESH_NGINX_DIR=f"{run.path}/nginx",
                 KVMESH_HTML_DIR=f"{s.root}/nginx/html",
                 KVMESH_NGINX_WORKERS=environ.get("KVMESH_NGINX_WORKERS") or "auto",
                 KVMESH_PROMETHEUS_UPSTREAM=f"127.0.0.1:{s.prom_port or '9'}")
    return envoy, nginx
