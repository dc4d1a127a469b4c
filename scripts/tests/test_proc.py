from __future__ import annotations

import os
import socket
import subprocess

from kvstack import proc


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    ports = proc.free_ports(5, avoid=[20000])
    assert len(set(ports)) == 5
    assert all(20000 < p <= 32767 and p not in proc.AVOID_PORTS for p in ports)


def test_port_open_sees_a_listener_and_not_a_closed_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert proc.port_open(port)
    assert not proc.port_open(port)


def test_read_pid_takes_the_digits_of_the_first_line(tmp_path: object) -> None:
    f = os.path.join(str(tmp_path), "x.pid")
    with open(f, "w") as fh:
        fh.write(" 1234\n999\n")
    assert proc.read_pid(f) == 1234
    assert proc.read_pid(f + ".missing") is None


def test_a_zombie_is_not_alive_and_wait_gone_returns_once_it_exits() -> None:
    child = subprocess.Popen(["sleep", "0.2"])
    assert proc.pid_alive(child.pid)
    assert proc.wait_gone(5, [child.pid])  # a zombie until reaped: counts as gone
    child.wait()
    assert not proc.pid_alive(None)


def test_elapsed_formats_tenths() -> None:
    assert proc.elapsed(proc.now_ms() - 1234) in ("1.2s", "1.3s")
