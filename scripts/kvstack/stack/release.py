"""The build a stack runs, copied into its run folder: RUN/release/<id>/ holds kv-service's and kv-consumer's jars with
their lib/ folders and the API descriptor Envoy transcodes with. A Maven build rewrites target/ in place; running
JVMs never read from there, so building while a stack runs cannot break it, and `./start.sh upgrade` starts new
processes on a new release while the others still run on theirs. The id is a digest of the files' contents: the same
build is the same release."""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass

from kvstack.stack.install import Jars


@dataclass(frozen=True)
class Release:
    id: str
    path: str

    def jar(self, module: str) -> str:
        return f"{self.path}/{module}/{module}.jar"

    @property
    def service(self) -> str:
        return self.jar("kv-service")

    @property
    def consumer(self) -> str:
        return self.jar("kv-consumer")

    @property
    def descriptor(self) -> str:
        return f"{self.path}/kvmesh.pb"


def _sources(jars: Jars) -> list[tuple[str, str]]:
    """(file in the source tree, its place in a release), in a fixed order."""
    files = [(jars.descriptor, "kvmesh.pb")]
    for module, jar in (("kv-service", jars.service), ("kv-consumer", jars.consumer)):
        files.append((jar, f"{module}/{module}.jar"))
        lib = os.path.join(os.path.dirname(jar), "lib")
        files += [(os.path.join(lib, name), f"{module}/lib/{name}") for name in sorted(os.listdir(lib))
                  if name.endswith(".jar")]
    return files


def release_id(jars: Jars) -> str:
    """12 hex digits of a SHA-256 over every file's place and contents."""
    h = hashlib.sha256()
    for src, dest in _sources(jars):
        h.update(dest.encode() + b"\0")
        with open(src, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()[:12]


def releases_dir(run_path: str) -> str:
    return f"{run_path}/release"


def snapshot(jars: Jars, run_path: str) -> Release:
    """The release of the jars now in the source tree, copied into the run folder unless it is there already
    (copied to a temporary folder, then renamed: a release folder is whole or absent)."""
    rid = release_id(jars)
    base = releases_dir(run_path)
    dest = f"{base}/{rid}"
    if not os.path.isdir(dest):
        tmp = f"{base}/.{rid}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        for src, rel in _sources(jars):
            os.makedirs(os.path.dirname(f"{tmp}/{rel}"), exist_ok=True)
            shutil.copyfile(src, f"{tmp}/{rel}")
        os.rename(tmp, dest)
    return Release(rid, dest)


def current(run_path: str) -> Release | None:
    """The release the stack's Java parts were last started on (RUN/release/current), if it is still there."""
    try:
        with open(f"{releases_dir(run_path)}/current", encoding="utf-8") as f:
            rid = f.read().strip()
    except OSError:
        return None
    path = f"{releases_dir(run_path)}/{rid}"
    return Release(rid, path) if rid and os.path.isdir(path) else None


def set_current(run_path: str, rel: Release) -> None:
    """Records REL as current and keeps it and the release before it; older ones are removed."""
    base = releases_dir(run_path)
    previous = current(run_path)
    tmp = f"{base}/current.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(rel.id + "\n")
    os.replace(tmp, f"{base}/current")
    keep = {rel.id} | ({previous.id} if previous else set())
    for name in os.listdir(base):
        full = f"{base}/{name}"
        if os.path.isdir(full) and name not in keep:
            shutil.rmtree(full, ignore_errors=True)
