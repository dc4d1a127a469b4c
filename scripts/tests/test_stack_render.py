from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from stack_fakes import ROOT, make_settings

from kvstack.stack import paths, render
from kvstack.stack.paths import RunDir

SERVERS_ENV = """# kvmesh throwaway servers
export KVMESH_PG_URL=jdbc:postgresql://127.0.0.1:5432/kvmesh\\?a=1\\&b=2
export KVMESH_PG_PASSWORD=pa%ss\\,wo\\ rd\\"q
export KVMESH_PG_PORT=5432
export KVMESH_AMQP_URI=amqp://kvmesh:x@127.0.0.1:5672/%2F
"""
BINS = render.Binaries("/jdk", "/venv/bin/envoy", "/j/service.jar", "/j/consumer.jar")


def conf_for(tmp_path: Path, run_name: str = "run", root_user: bool = False, servers_env: str = SERVERS_ENV,
             **env: str) -> tuple[str, RunDir]:
    rd = tmp_path / run_name
    s = make_settings(ROOT, str(rd), KVMESH_CONSUMER_HTTP_PORTS="7001,7002", KVMESH_REPLICA_ADMIN_PORTS="8001,8002",
                      **env)
    run = RunDir(s.run_dir)
    Path(run.servers_env_file).write_text(servers_env, encoding="utf-8")
    progs = render.supervisor_programs(s, run, BINS, paths.rabbitmq_parts(run, env), run.servers_env(), env)
    return render.supervisor_conf_text(run, progs, root_user=root_user), run


def sections(text: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    cur: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("["):
            cur = out.setdefault(line.strip("[]"), {})
        elif "=" in line and not line.startswith(";"):
            k, _, v = line.partition("=")
            cur[k.strip()] = v.strip()
    return out


def test_programs_priorities_and_stop_rules(tmp_path: Path) -> None:
    text, run = conf_for(tmp_path)
    sec = sections(text)
    progs = [k.removeprefix("program:") for k in sec if k.startswith("program:")]
    assert progs == ["postgres", "redis", "rabbitmq", "kv-service-1", "kv-service-2", "kv-consumer-1", "kv-consumer-2",
                     "envoy", "nginx"]
    want = {"postgres": ("10", "INT", "30"), "redis": ("10", "TERM", "30"), "rabbitmq": ("10", "TERM", "45"),
            "kv-service-1": ("20", "TERM", "30"), "kv-consumer-2": ("20", "TERM", "30"), "envoy": ("30", "TERM", "15"),
            "nginx": ("30", "QUIT", "15")}
    for name, (prio, sig, wait) in want.items():
        p = sec[f"program:{name}"]
        assert (p["priority"], p["stopsignal"], p["stopwaitsecs"]) == (prio, sig, wait)
        assert (p["startsecs"], p["startretries"], p["autorestart"], p["stopasgroup"], p["killasgroup"]) == (
            "2", "100", "true", "true", "true")
        assert p["directory"] == run.path
    assert sec["program:postgres"]["command"] == f'"{ROOT}/scripts/servers.sh" "run" "{run.path}" "postgres"'
    assert sec["program:redis"]["stdout_logfile"] == f"{run.logs}/redis-console.log"
    assert sec["program:rabbitmq"]["stdout_logfile"] == f"{run.logs}/rabbitmq-console.log"
    assert sec["program:nginx"]["command"] == f'"{ROOT}/start.sh" "__nginx" "{run.path}"'
    assert sec["program:envoy"]["command"] == (
        f'"/bin/sh" "-c" "echo $$ >\\"$0\\" && exec \\"$@\\"" "{run.pids}/envoy.pid" "/venv/bin/envoy" "-c" '
        f'"{run.conf}/envoy.yaml" "--concurrency" "2" "--disable-hot-restart" "--log-level" "warn"')
    assert sec["program:kv-service-1"]["command"] == (
        f'"/bin/sh" "-c" "echo $$ >\\"$0\\" && exec \\"$@\\"" "{run.pids}/kv-service-1.pid" "/jdk/bin/java" '
        f'"-XX:+ExitOnOutOfMemoryError" "-Xmx512m" "-Dkvmesh.run={run.path}" "-Dkvmesh.part=kv-service-1" "-jar" '
        '"/j/service.jar"')
    assert "environment" not in sec["program:envoy"] and "environment" not in sec["program:postgres"]
    assert sec["supervisorctl"]["serverurl"] == f"unix://{run.path}/supervisor.sock"
    assert sec["unix_http_server"] == {"file": f"{run.path}/supervisor.sock", "chmod": "0700"}


def test_java_parts_use_the_aot_cache_on_jdk_25(tmp_path: Path) -> None:
    jdk = tmp_path / "jdk25"
    jdk.mkdir()
    (jdk / "release").write_text('IMPLEMENTOR="Eclipse Adoptium"\nJAVA_VERSION="25.0.3"\n', encoding="utf-8")
    assert render.jdk_major(str(jdk)) == 25 and render.jdk_major(str(tmp_path / "none")) == 0
    ports = dict(KVMESH_CONSUMER_HTTP_PORTS="7001,7002", KVMESH_REPLICA_ADMIN_PORTS="8001,8002")
    s = make_settings(ROOT, str(tmp_path / "run"), **ports)
    run = RunDir(s.run_dir)
    bins = render.Binaries(str(jdk), "/venv/bin/envoy", "/rel/kv-service/kv-service.jar", "/rel/c/kv-consumer.jar")
    progs = {p.name: p for p in render.supervisor_programs(s, run, bins, ["rabbitmq"], {}, {})}
    assert progs["kv-service-2"].command[:7] == ["/bin/sh", "-c", render.AOT_WRAPPER, f"{run.pids}/kv-service-2.pid",
                                                 "/rel/kv-service/kv-service.aot", f"{jdk}/bin/java",
                                                 "-XX:+ExitOnOutOfMemoryError"]
    assert progs["kv-consumer-1"].command[4] == "/rel/c/kv-consumer.aot"
    off = make_settings(ROOT, str(tmp_path / "run"), KVMESH_AOT="off", **ports)
    progs = {p.name: p for p in render.supervisor_programs(off, run, bins, ["rabbitmq"], {}, {})}
    assert progs["kv-service-1"].command[2] == render.PID_WRAPPER


def test_aot_wrapper_records_once_assembles_in_background_then_uses_the_cache(tmp_path: Path) -> None:
    java = tmp_path / "java"   # a fake java: prints its arguments; in create mode writes the cache it is asked for
    java.write_text('#!/bin/sh\necho "$@"\nfor a in "$@"; do case "$a" in -XX:AOTCache=*) '
                    '[ "$1" = -XX:AOTMode=create ] '
                    '&& echo cache >"${a#-XX:AOTCache=}";; esac; done\nexit 0\n', encoding="utf-8")
    java.chmod(0o755)
    cache = tmp_path / "rel" / "kv-service.aot"
    cache.parent.mkdir()

    def run(pid: str) -> str:
        out = subprocess.run(["/bin/sh", "-c", render.AOT_WRAPPER, str(tmp_path / pid), str(cache), str(java), "-Xmx1m",
                              "-jar", "x.jar"], capture_output=True, text=True, check=True).stdout.strip()
        assert (tmp_path / pid).read_text().strip().isdigit()
        return out

    # the first records its training configuration; the others meanwhile run without
    assert run("a.pid") == f"-XX:AOTMode=record -XX:AOTConfiguration={cache}.config -Xmx1m -jar x.jar"
    assert run("b.pid") == "-Xmx1m -jar x.jar"
    Path(f"{cache}.config").write_text("profiles", encoding="utf-8")   # written when the trainer stopped
    assert run("c.pid") == "-Xmx1m -jar x.jar"   # assembles in the background, runs without
    for _ in range(100):
        if cache.exists() and not Path(f"{cache}.assembling").exists():
            break
        time.sleep(0.05)
    assert cache.read_text() == "cache\n" and not list(cache.parent.glob("*.tmp"))
    assert "-XX:AOTMode=create" in Path(f"{cache}.assembly.log").read_text()
    assert run("d.pid") == f"-XX:AOTCache={cache} -Xmx1m -jar x.jar"


def test_environment_quoting(tmp_path: Path) -> None:
    text, run = conf_for(tmp_path, KVMESH_AUTH="on")
    sec = sections(text)
    base = ('KVMESH_PG_URL="jdbc:postgresql://127.0.0.1:5432/kvmesh?a=1&b=2",KVMESH_PG_PASSWORD="pa%%ss,wo rd"q",'
            'KVMESH_PG_PORT="5432",KVMESH_AMQP_URI="amqp://kvmesh:x@127.0.0.1:5672/%%2F"')
    assert sec["program:kv-service-2"]["environment"] == (
        base + ',KVMESH_GRPC_BIND="127.0.0.1",KVMESH_GRPC_PORT="9092",KVMESH_AUTH="on",'
        f'KVMESH_AUTH_JWKS_FILE="{run.secrets}/auth-jwks.json",KVMESH_ADMIN_BIND="127.0.0.1",KVMESH_ADMIN_PORT="8002",'
        'KVMESH_INSTANCE="kv-service-2"')
    assert sec["program:kv-consumer-1"]["environment"] == (
        base + ',KVMESH_CONSUMER_HTTP_BIND="127.0.0.1",KVMESH_CONSUMER_HTTP_PORT="7001",'
        'KVMESH_INSTANCE="kv-consumer-1"')
    off = sections(conf_for(tmp_path, "off")[0])["program:kv-service-1"]["environment"]
    assert 'KVMESH_AUTH="off",KVMESH_ADMIN_BIND' in off and "JWKS" not in off


def test_words_and_paths_with_percent_quotes_and_spaces(tmp_path: Path) -> None:
    assert render.sv_word('a "b" \\c 50%') == '"a \\"b\\" \\\\c 50%%"'
    assert render.sv_words(["x y", "%(here)s"]) == '"x y" "%%(here)s"'
    assert render.sv_path("/tmp/a%b") == "/tmp/a%%b"
    assert render.sv_env([("A", "1,2"), ("B", "x%y")]) == 'A="1,2",B="x%%y"'
    text, run = conf_for(tmp_path, "r 50%", KVMESH_JAVA_OPTS="-Xmx1g  -Dq=a%b")
    sec = sections(text)
    assert sec["supervisord"]["directory"] == run.path.replace("%", "%%")
    assert sec["supervisord"]["identifier"] == "kvmesh-r-50-"
    assert f'"-Xmx1g" "-Dq=a%%b" "-Dkvmesh.run={run.path.replace("%", "%%")}"' in sec["program:kv-service-1"]["command"]


def test_root_user_line(tmp_path: Path) -> None:
    as_root = conf_for(tmp_path, root_user=True)[0]
    assert ("identifier=kvmesh-run\n; root: saying so spares a warning that no user was named\nuser=root\n\n"
            "[rpcinterface") in as_root
    assert "identifier=kvmesh-run\n\n\n[rpcinterface" in conf_for(tmp_path, root_user=False)[0]
    assert "\n\n[program:postgres]\ncommand=" in as_root and "\n\n\n[program" not in as_root
    assert as_root.endswith("stdout_logfile_backups=2\n")


def test_long_run_dir_puts_the_socket_in_tmp(tmp_path: Path) -> None:
    name = "x" * 120
    text, run = conf_for(tmp_path, name)
    assert run.sv_sock.startswith("/tmp/kvmesh-supervisor-") and len(run.sv_sock) == len("/tmp/kvmesh-supervisor-") + 21
    assert f"serverurl=unix://{run.sv_sock}\n" in text
    assert paths.supervisor_socket("/short") == "/short/supervisor.sock"


def test_standby_rabbit_cluster_and_prometheus_programs(tmp_path: Path) -> None:
    env = SERVERS_ENV + "export KVMESH_PG_STANDBY_PORT=5433\nexport KVMESH_RABBITMQ_NODES=3\n"
    text, run = conf_for(tmp_path, servers_env=env, KVMESH_PROMETHEUS="1", KVMESH_PROMETHEUS_PORT="9090",
                         KVMESH_ENVOY_CONCURRENCY="4")
    sec = sections(text)
    progs = [k.removeprefix("program:") for k in sec if k.startswith("program:")]
    assert progs[:6] == ["postgres", "redis", "postgres-standby", "rabbitmq-1", "rabbitmq-2", "rabbitmq-3"]
    assert progs[-1] == "prometheus"
    assert sec["program:postgres-standby"]["stopsignal"] == "INT"
    assert sec["program:rabbitmq-2"]["stdout_logfile"] == f"{run.logs}/rabbitmq-2-console.log"
    assert sec["program:prometheus"]["priority"] == "40"
    assert sec["program:prometheus"]["command"] == (
        f'"prometheus" "--config.file={run.conf}/prometheus.yml" "--storage.tsdb.path={run.path}/prometheus" '
        '"--storage.tsdb.retention.time=2d" "--web.listen-address=127.0.0.1:9090"')
    assert '"--concurrency" "4"' in sec["program:envoy"]["command"]


def test_prometheus_yml(tmp_path: Path) -> None:
    s = make_settings(ROOT, str(tmp_path), KVMESH_REPLICA_ADMIN_PORTS="8001,8002,8003",
                      KVMESH_CONSUMER_HTTP_PORTS="7001,7002", KVMESH_ENVOY_ADMIN_PORT="9901")
    text = render.prometheus_yml_text(s, RunDir(s.run_dir))
    assert text.startswith(f"# generated by start.sh (KVMESH_PROMETHEUS=1) for {tmp_path}\nglobal:\n")
    assert "    static_configs: [{targets: ['127.0.0.1:8001', '127.0.0.1:8002']}]\n" in text
    assert "    static_configs: [{targets: ['127.0.0.1:7001', '127.0.0.1:7002']}]\n" in text
    assert text.endswith("    metrics_path: /stats/prometheus\n    static_configs: [{targets: ['127.0.0.1:9901']}]\n")


def test_write_private_is_0600(tmp_path: Path) -> None:
    f = tmp_path / "c.conf"
    render.write_private(str(f), "x")
    assert f.read_text() == "x" and (os.stat(f).st_mode & 0o777) == 0o600


def render_by_shell(tmpl: str, env: dict[str, str], out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([f"{ROOT}/scripts/render-config.sh", tmpl, str(out)], env=env, text=True,
                          capture_output=True)


@pytest.mark.parametrize("which", ["envoy", "nginx"])
def test_edge_configs_match_render_config_sh(tmp_path: Path, which: str) -> None:
    s = make_settings(ROOT, str(tmp_path / "run"), KVMESH_REPLICA_PORTS="9001,9002", KVMESH_HTTP_BIND="0.0.0.0",
                      KVMESH_AUTH="on", KVMESH_PROMETHEUS="1", KVMESH_PROMETHEUS_PORT="9999")
    run = RunDir(s.run_dir)
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "KVMESH_NGINX_WORKERS": "3"}
    envoy_env, nginx_env = render.edge_environ(s, run, "/d/kvmesh.pb", base)
    env = envoy_env if which == "envoy" else nginx_env
    tmpl = f"{ROOT}/{'envoy/envoy.yaml' if which == 'envoy' else 'nginx/nginx.conf'}"
    res = render_by_shell(tmpl, env, tmp_path / "want")
    assert res.returncode == 0, res.stderr
    assert render.render_template_text(tmpl, env) == (tmp_path / "want").read_text()
    render.render_template(tmpl, str(tmp_path / "got"), env)
    assert (tmp_path / "got").read_bytes() == (tmp_path / "want").read_bytes()


def test_template_rules_match_render_config_sh(tmp_path: Path) -> None:
    tmpl = tmp_path / "t.conf"
    tmpl.write_text("a ${KVMESH_A} $nginx_var ${KVMESH_B}\n    #@ENDPOINTS@\n  #@ENDPOINTS@ x\nlast ${KVMESH_A}",
                    encoding="utf-8")
    env = {"PATH": os.environ.get("PATH", ""), "KVMESH_A": "x&y|z\\w", "KVMESH_B": "",
           "KVMESH_ENVOY_UPSTREAMS": "h1:1,kv-service:9090"}
    assert render_by_shell(str(tmpl), env, tmp_path / "want").returncode == 0
    assert render.render_template_text(str(tmpl), env) == (tmp_path / "want").read_text()


@pytest.mark.parametrize("env, message", [
    ({"KVMESH_ENVOY_UPSTREAMS": "h:1"}, "render-config: {t} needs $KVMESH_A, which is not set"),
    ({"KVMESH_A": "1"}, "render-config: KVMESH_ENVOY_UPSTREAMS is empty"),
])
def test_template_errors_match_render_config_sh(tmp_path: Path, env: dict[str, str], message: str) -> None:
    tmpl = tmp_path / "t.conf"
    tmpl.write_text("${KVMESH_A}\n#@ENDPOINTS@\n", encoding="utf-8")
    res = render_by_shell(str(tmpl), {"PATH": os.environ.get("PATH", ""), **env}, tmp_path / "o")
    assert res.returncode == 1 and res.stderr.strip() == message.format(t=tmpl)
    with pytest.raises(render.RenderError, match=message.format(t=tmpl).replace("$", r"\$")):
        render.render_template_text(str(tmpl), env)


def test_via_proxy_routes_one_parts_server_address_through_a_proxy(tmp_path: Path) -> None:
    text, _ = conf_for(tmp_path, servers_env=SERVERS_ENV + "export KVMESH_AMQP_PORT=5672\n",
                       KVMESH_VIA_PROXY="kv-service-1:rabbitmq=6001, kv-consumer-2:postgres=6002")
    sec = sections(text)
    assert "127.0.0.1:6001/%%2F" in sec["program:kv-service-1"]["environment"]
    assert "127.0.0.1:5432/kvmesh" in sec["program:kv-service-1"]["environment"]
    assert "127.0.0.1:6002/kvmesh" in sec["program:kv-consumer-2"]["environment"]
    assert "127.0.0.1:5672/%%2F" in sec["program:kv-consumer-2"]["environment"]
    for part in ("kv-service-2", "kv-consumer-1"):  # the other parts reach the servers directly
        env = sec[f"program:{part}"]["environment"]
        assert "127.0.0.1:5432/kvmesh" in env and "127.0.0.1:5672/%%2F" in env and "600" not in env
    assert render.via_proxy("") == {}
    redis = "export KVMESH_REDIS_PORT=6379\nexport KVMESH_REDIS_URI=redis://:pw@127.0.0.1:6379\n"
    text, _ = conf_for(tmp_path, servers_env=SERVERS_ENV + redis, KVMESH_VIA_PROXY="kv-consumer-1:redis=6003")
    sec = sections(text)
    assert "127.0.0.1:6003" in sec["program:kv-consumer-1"]["environment"]
    assert "127.0.0.1:6379" in sec["program:kv-consumer-2"]["environment"]
    for bad in ("kv-service-1:memcached=6001", "envoy:postgres=1", "kv-service-1:postgres", "kv-consumer-1:rabbitmq=0"):
        with pytest.raises(render.RenderError):
            render.via_proxy(bad)
