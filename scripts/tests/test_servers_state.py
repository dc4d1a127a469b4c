"""servers.state / servers.env / rabbitmq-cluster.state from the environment (kvstack.servers): no server runs."""
from __future__ import annotations

import os
import shlex
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvstack import proc
from kvstack.servers import cli, common, rabbitmq, standby
from kvstack.servers.context import Servers, node_name
from kvstack.servers.paths import RunDir, open_run_dir
from kvstack.servers.state import State, format_assignments, parse_assignments, read_assignments

FREE = list(range(21001, 21100))


@pytest.fixture(autouse=True)
def no_root_no_ports(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Not root (no chown, no setpriv), nothing listens, free_ports hands out FREE in order."""
    for mod in (common, cli, rabbitmq):
        monkeypatch.setattr(mod, "is_root", lambda: False)
    monkeypatch.setattr(proc, "port_open", lambda port, host="127.0.0.1", timeout=2.0: False)
    handed: list[int] = []

    def free_ports(n: int, avoid: object = ()) -> list[int]:
        skip = set(avoid) if isinstance(avoid, list | tuple | set) else set()
        out = [p for p in FREE if p not in handed and p not in skip][:n]
        handed.extend(out)
        return out
    monkeypatch.setattr(proc, "free_ports", free_ports)
    monkeypatch.setattr(cli, "SOCK_LIMIT", 10_000)  # tmp_path is long: keep the socket folder inside it
    cwd = os.getcwd()
    yield handed
    os.chdir(cwd)


def servers(tmp_path: Path, name: str = "run1", **env: str) -> Servers:
    rd = open_run_dir(str(tmp_path / name))
    return Servers(rd, env=dict(env))


def prepared(tmp_path: Path, name: str = "run1", **env: str) -> Servers:
    s = servers(tmp_path, name, **env)
    s.load_state()
    cli.choose_ports_and_folders(s)
    return s


def env_of(s: Servers) -> dict[str, str]:
    cli.write_servers_env(s)
    return read_assignments(s.rd.env_file) or {}


# ---------------------------------------------------------------- the table

def test_free_ports_and_a_node_name_from_the_run_folder(tmp_path: Path) -> None:
    s = prepared(tmp_path, "my run.dir")
    st = State.load(s.rd.state)
    assert st is not None
    assert (st.pg_port, st.redis_port, st.amqp_port, st.dist_port) == ("21001", "21002", "21003", "21004")
    assert st.rabbit_node.startswith("kvmesh-my-run-dir-") and st.rabbit_node.endswith("@localhost")
    assert len(st.rabbit_node.split("@")[0].rsplit("-", 1)[1]) == 8
    assert st.pg_sock == f"{s.rd.pg_dir}/sock"
    e = env_of(s)
    c = s.c
    assert e["KVMESH_PG_URL"] == "jdbc:postgresql://127.0.0.1:21001/kvmesh"
    assert e["KVMESH_REDIS_URI"] == f"redis://:{c.redis}@127.0.0.1:21002"
    assert e["KVMESH_AMQP_URI"] == f"amqp://kvmesh:{c.amqp}@127.0.0.1:21003/%2F"
    assert e["KVMESH_TEST_SERVERS"].endswith("/scripts/servers.sh")
    assert e["KVMESH_TEST_RUN_DIR"] == s.rd.dir
    assert e["KVMESH_CREDENTIALS_FILE"] == f"{s.rd.dir}/secrets/credentials.env"
    assert "KVMESH_RABBITMQ_NODES" not in e and "KVMESH_PG_STANDBY" not in e
    assert stat.S_IMODE(os.stat(s.rd.env_file).st_mode) == 0o600
    assert list(e) == [k for k, _ in cli.servers_env_pairs(s)]


def test_node_tag_is_bytes_of_the_name_cut_at_24() -> None:
    assert cli.node_tag("/x/abcdefghijklmnopqrstuvwxyz") == "abcdefghijklmnopqrstuvwx"
    assert cli.node_tag("/x/é_a-b") == "--_a-b"
    assert node_name("kvmesh-a-1@localhost", 3) == "kvmesh-a-1-r3@localhost"
    assert node_name("kvmesh-a-1@localhost", 1) == "kvmesh-a-1@localhost"


def test_pinned_ports_are_taken_and_the_node_name_is_kept(tmp_path: Path) -> None:
    s = prepared(tmp_path, KVMESH_PG_PORT="5999", KVMESH_REDIS_PORT="6999", KVMESH_AMQP_PORT="7999",
                 KVMESH_RABBIT_DIST_PORT="8999")
    assert (s.state.pg_port, s.state.redis_port, s.state.amqp_port, s.state.dist_port) == ("5999", "6999", "7999",
                                                                                           "8999")
    node = s.state.rabbit_node
    again = prepared(tmp_path)
    assert again.state.rabbit_node == node
    assert again.state.pg_port not in ("5999", "21001")  # a restart picks new free ports


@pytest.mark.parametrize(("var", "value", "message"), [
    ("KVMESH_PG_PORT", "54x", "invalid port '54x'"),
    ("KVMESH_RABBITMQ_NODES", "8", "KVMESH_RABBITMQ_NODES must be 1..7 (got '8')"),
    ("KVMESH_RABBITMQ_NODES", "two", "KVMESH_RABBITMQ_NODES must be 1..7 (got 'two')"),
    ("KVMESH_RABBIT_CLUSTER_PORTS", "1,2", "rabbitmq cluster: need 4 ports for nodes 2..3, have 2"),
])
def test_invalid_settings_die_with_the_message(tmp_path: Path, capsys: pytest.CaptureFixture[str], var: str,
                                               value: str, message: str) -> None:
    env = {var: value}
    if var == "KVMESH_RABBIT_CLUSTER_PORTS":
        env["KVMESH_RABBITMQ_NODES"] = "3"
    with pytest.raises(SystemExit) as e:
        prepared(tmp_path, **env)
    assert e.value.code == 1
    assert f"[servers] ERROR: {message}" in capsys.readouterr().err


def test_a_port_in_use_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(proc, "port_open", lambda port, host="127.0.0.1", timeout=2.0: str(port) == "21002")
    with pytest.raises(SystemExit):
        prepared(tmp_path)
    assert "port 21002 on 127.0.0.1 is already in use" in capsys.readouterr().err


@pytest.mark.parametrize(("nodes", "quorum"), [("2", "2"), ("3", "3"), ("5", "3")])
def test_a_cluster_gets_ports_avoiding_the_others_and_env_lines(tmp_path: Path, nodes: str, quorum: str) -> None:
    s = prepared(tmp_path, KVMESH_RABBITMQ_NODES=nodes)
    n = int(nodes)
    cs = read_assignments(s.rd.rmq_cluster_state)
    assert cs is not None and cs["RMQ_NODES"] == nodes
    ports = cs["RMQ_CLUSTER_PORTS"].split(",")
    assert len(ports) == (n - 1) * 2
    assert not set(ports) & {"21001", "21002", "21003", "21004"}
    e = env_of(s)
    assert e["KVMESH_RABBITMQ_NODES"] == nodes
    assert e["KVMESH_AMQP_QUORUM_SIZE"] == quorum
    addrs = e["KVMESH_AMQP_ADDRESSES"].split(",")
    assert addrs[0] == "127.0.0.1:21003" and addrs[1:] == [f"127.0.0.1:{p}" for p in ports[0::2]]
    for k in range(2, n + 1):
        assert os.path.isdir(f"{s.rd.dir}/rabbitmq-{k}/mnesia")
        with open(f"{s.rd.dir}/rabbitmq-{k}/home/.erlang.cookie") as f, \
                open(f"{s.rd.dir}/rabbitmq/home/.erlang.cookie") as g:
            assert f.read() == g.read()
        assert stat.S_IMODE(os.stat(f"{s.rd.dir}/rabbitmq-{k}/home/.erlang.cookie").st_mode) == 0o400


def test_pinned_cluster_ports(tmp_path: Path) -> None:
    s = prepared(tmp_path, KVMESH_RABBITMQ_NODES="3", KVMESH_RABBIT_CLUSTER_PORTS="30001,30002,30003,30004")
    assert [(nd.amqp_port, nd.dist_port) for nd in s.nodes()] == [("21003", "21004"), ("30001", "30002"),
                                                                  ("30003", "30004")]
    assert s.node(3).dir == f"{s.rd.dir}/rabbitmq-3"


def test_a_run_folder_keeps_its_cluster_and_refuses_to_shrink_it_changing_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prepared(tmp_path, KVMESH_RABBITMQ_NODES="3")
    before = read_assignments(f"{tmp_path}/run1/rabbitmq-cluster.state")
    assert prepared(tmp_path).rmq_nodes == 3  # unset: the run folder's own count
    assert prepared(tmp_path, KVMESH_RABBITMQ_NODES="3").rmq_nodes == 3
    capsys.readouterr()
    for fewer in ("2", "1"):
        s = servers(tmp_path, KVMESH_RABBITMQ_NODES=fewer)
        s.load_state()
        with pytest.raises(SystemExit) as e:
            rabbitmq.refuse_shrink(s)  # what claim_run_dir does before anything is written
        assert e.value.code == 1
        err = capsys.readouterr().err
        assert f"runs a cluster of 3 nodes and KVMESH_RABBITMQ_NODES={fewer} would shrink it" in err
        assert "Nothing was changed" in err and "Unset KVMESH_RABBITMQ_NODES (or set it to 3)" in err
    assert read_assignments(f"{tmp_path}/run1/rabbitmq-cluster.state") == before


def test_a_single_node_with_data_grows_to_a_cluster_keeping_node_1(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    s = prepared(tmp_path)
    node1 = (s.state.rabbit_node, s.state.amqp_port, s.state.dist_port)
    assert s.rmq_nodes == 1 and not os.path.exists(s.rd.rmq_cluster_state)
    with open(f"{s.node(1).mnesia}/cluster_nodes.config", "w") as f:  # the broker ran: node 1 has data
        f.write("{[], []}.\n")
    capsys.readouterr()
    s = prepared(tmp_path, KVMESH_RABBITMQ_NODES="3")
    assert s.rmq_nodes == 3
    assert "growing the broker of" in capsys.readouterr().err
    assert s.node(1).name == node1[0] and s.node(1).dir == f"{s.rd.dir}/rabbitmq"
    assert os.path.exists(f"{s.node(1).mnesia}/cluster_nodes.config")  # node 1's data untouched
    e = env_of(s)
    assert e["KVMESH_AMQP_QUORUM_SIZE"] == "3" and len(e["KVMESH_AMQP_ADDRESSES"].split(",")) == 3
    with open(f"{s.rd.dir}/rabbitmq/rabbitmq.conf") as f:
        conf = f.read()
    assert all(f"cluster_formation.classic_config.nodes.{n} = {node_name(node1[0], n)}" in conf for n in (1, 2, 3))


def test_a_cluster_grows_keeping_the_ports_of_its_nodes(tmp_path: Path) -> None:
    s = prepared(tmp_path, KVMESH_RABBITMQ_NODES="2", KVMESH_RABBIT_CLUSTER_PORTS="30001,30002")
    s = prepared(tmp_path, KVMESH_RABBITMQ_NODES="3", KVMESH_RABBIT_CLUSTER_PORTS="30001,30002,30003,30004")
    assert [(nd.amqp_port, nd.dist_port) for nd in s.nodes()][1:] == [("30001", "30002"), ("30003", "30004")]
    s = prepared(tmp_path, KVMESH_RABBITMQ_NODES="4")
    ports = [(nd.amqp_port, nd.dist_port) for nd in s.nodes()][1:]
    assert ports[:2] == [("30001", "30002"), ("30003", "30004")] and len(set(ports[2])) == 2


def test_kvmesh_rmq_index_selects_a_node_and_an_unknown_one_dies(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    prepared(tmp_path, KVMESH_RABBITMQ_NODES="3")
    s = servers(tmp_path, KVMESH_RMQ_INDEX="2")
    s.load_state()
    assert s.node().name.endswith("-r2@localhost")
    s = servers(tmp_path, KVMESH_RMQ_INDEX="4")
    with pytest.raises(SystemExit):
        s.load_state()
    assert "no rabbitmq node 4 (nodes: 1..3)" in capsys.readouterr().err


def test_standby_port_and_the_jdbc_url_with_both_servers(tmp_path: Path) -> None:
    s = prepared(tmp_path, KVMESH_PG_STANDBY="1")
    standby.prepare(s)
    assert s.standby_port == "21005"
    assert read_assignments(s.rd.pgs_state) == {"PG_STANDBY_PORT": "21005"}
    assert s.repl_pass and len(s.repl_pass) == 32
    e = env_of(s)
    assert e["KVMESH_PG_URL"] == ("jdbc:postgresql://127.0.0.1:21001,127.0.0.1:21005/kvmesh"
                                  "?targetServerType=primary&hostRecheckSeconds=2")
    assert e["KVMESH_PG_STANDBY_PORT"] == "21005" and e["KVMESH_PG_STANDBY"] == "1"
    with open(f"{s.rd.pgs_dir}/.pgpass") as f:
        assert f.read() == f"*:*:*:replicator:{s.repl_pass}\n*:*:*:postgres:{s.c.pg_super}\n"
    # later commands see the standby through pg-standby.state, without the variable
    later = servers(tmp_path)
    later.load_state()
    assert later.standby_on()
    later.standby_vars()
    assert later.standby_port == "21005"


def test_standby_pinned_port_equal_to_the_primary_is_refused(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    s = prepared(tmp_path, KVMESH_PG_STANDBY="1", KVMESH_PG_PORT="5999", KVMESH_PG_STANDBY_PORT="5999")
    with pytest.raises(SystemExit):
        standby.prepare(s)
    assert "the standby's port 5999 is the primary's" in capsys.readouterr().err


def test_a_long_run_folder_gets_a_short_socket_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "SOCK_LIMIT", 100)
    assert cli.pg_sock_dir("/tmp/r/postgres") == "/tmp/r/postgres/sock"
    d = RunDir(str(tmp_path / ("x" * 90)))
    sock = cli.pg_sock_dir(d.pg_dir)
    try:
        assert sock.startswith("/tmp/kvmesh-pgsock.") and os.path.isdir(sock)
    finally:
        os.rmdir(sock)


# ---------------------------------------------------------------- quoting

TRICKY = ["plain", "", "with space", "it's", 'dq"x', "$HOME `x` \\n", "a&b?c=d", "semi;colon", "new\nline", "ü-ñ",
          "jdbc:postgresql://127.0.0.1:1,127.0.0.1:2/kvmesh?targetServerType=primary&hostRecheckSeconds=2"]


def test_servers_env_values_round_trip_through_bash_shlex_and_our_reader(tmp_path: Path) -> None:
    from kvstack.servers.state import write_env
    path = str(tmp_path / "servers.env")
    pairs = [(f"V{i}", v) for i, v in enumerate(TRICKY)]
    write_env(path, "/x/scripts/servers.sh", "/run dir", pairs)
    # our reader is line based (no value of servers.env has a newline); bash and shlex take that one too
    got = read_assignments(path) or {}
    assert {k: got[k] for k, v in pairs if "\n" not in v} == {k: v for k, v in pairs if "\n" not in v}
    for name, value in pairs:
        out = subprocess.run(["bash", "-c", f'source "$0"; printf %s "${name}"', path], capture_output=True,
                             check=True).stdout.decode()
        assert out == value, name
    with open(path) as f:
        lines = [ln for ln in f.read().split("\nexport ") if "=" in ln]
    for line in lines:  # faults/stack.py read_env_file: shlex.split of the value
        key, _, val = line.removeprefix("export ").partition("=")
        if "\n" in dict(pairs)[key]:
            continue
        words = shlex.split(val)
        assert (words[0] if words else "") == dict(pairs)[key]


def test_plain_words_stay_unquoted_for_the_sed_readers() -> None:
    text = format_assignments([("KVMESH_PG_PORT", "5432"), ("KVMESH_RABBIT_NODE", "kvmesh-a_b-12ab34cd@localhost"),
                               ("KVMESH_AMQP_URI", "amqp://kvmesh:Ab1@127.0.0.1:1/%2F")], export=True)
    assert text == ("export KVMESH_PG_PORT=5432\nexport KVMESH_RABBIT_NODE=kvmesh-a_b-12ab34cd@localhost\n"
                    "export KVMESH_AMQP_URI=amqp://kvmesh:Ab1@127.0.0.1:1/%2F\n")


def test_state_files_written_by_the_old_script_are_read() -> None:
    old = ("PG_PORT=26806\nREDIS_PORT=20804\nAMQP_PORT=22164\nDIST_PORT=22878\n"
           "RABBIT_NODE=kvmesh-kvsO1-289321ce@localhost\nPG_SOCK=/tmp/a\\ b/sock\n")
    v = parse_assignments(old)
    assert v["PG_SOCK"] == "/tmp/a b/sock" and v["RABBIT_NODE"] == "kvmesh-kvsO1-289321ce@localhost"
    st = State(**{attr: v[name] for name, attr in State.FIELDS})
    assert parse_assignments(st.text()) == v


def test_servers_state_is_bash_sourceable(tmp_path: Path) -> None:
    st = State("1", "2", "3", "4", "n@localhost", "/tmp/with space")
    st.write(str(tmp_path / "servers.state"))
    out = subprocess.run(["bash", "-c", 'source "$0"; printf "%s|" "$PG_PORT" "$RABBIT_NODE" "$PG_SOCK"',
                          str(tmp_path / "servers.state")], capture_output=True, check=True, text=True).stdout
    assert out == "1|n@localhost|/tmp/with space|"
    assert State.load(str(tmp_path / "servers.state")) == st
