"""Shell-quoted KEY=VALUE files as bash reads them: stack.env, servers.env and the servers' state files (both halves of
the stack manager read them here)."""
from __future__ import annotations

import os
import re
import shlex

# the characters bash's `printf %q` escapes with a backslash (besides ~ and # at the start)
_Q_SPECIAL = set(" \t'\"\\|&;()<>!{}*[?]^$`,")
_C_ESCAPES = {"\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f", "\r": "\\r",
              "\x1b": "\\E", "'": "\\'", "\\": "\\\\"}


def shell_quote(value: str) -> str:
    """value as bash's `printf %q` writes it (one word for `source`, also readable by shlex)."""
    if value == "":
        return "''"
    if any(not c.isprintable() for c in value):
        inner = "".join(_C_ESCAPES.get(c, c if c.isprintable() else f"\\{ord(c):03o}") for c in value)
        return f"$'{inner}'"
    out = []
    for i, c in enumerate(value):
        if c in _Q_SPECIAL or (i == 0 and c in "~#"):
            out.append("\\" + c)
        else:
            out.append(c)
    return "".join(out)


_ANSI_C = re.compile(r"\$'((?:[^'\\]|\\.)*)'")


def _ansi_c(m: re.Match[str]) -> str:
    text = m.group(1).replace("\\E", "\\x1b").replace("\\'", "'")
    return shlex.quote(text.encode("latin-1", "backslashreplace").decode("unicode_escape"))


def shell_unquote(value: str) -> str:
    """One shell word (what `source` would assign): quotes and backslashes resolved, $'...' decoded."""
    value = value.strip()
    if "$'" in value:
        value = _ANSI_C.sub(_ansi_c, value)
    try:
        words = shlex.split(value, comments=False, posix=True)
    except ValueError:
        return value
    return " ".join(words)


def parse_env_text(text: str) -> dict[str, str]:
    """KEY=VALUE lines (optionally `export`ed, shell-quoted), in file order; comments and blank lines skipped; the last
    assignment of a name wins (as when the file is sourced)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ")
        key, eq, val = line.partition("=")
        if eq and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            out[key] = shell_unquote(val)
    return out


def read_env_file(path: str) -> dict[str, str]:
    """parse_env_text of a file; {} when the file is missing."""
    try:
        with open(path, encoding="utf-8") as f:
            return parse_env_text(f.read())
    except OSError:
        return {}


def write_env_file(path: str, comment: str, values: list[tuple[str, str]]) -> None:
    """`# comment` then NAME=%q lines, replaced atomically."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"# {comment}\n")
        for name, value in values:
            f.write(f"{name}={shell_quote(value)}\n")
    os.replace(tmp, path)
