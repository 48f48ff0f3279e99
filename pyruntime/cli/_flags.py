"""A small runc-compatible flag parser (urfave/cli semantics, without argparse's import cost).

Flags may be written `--name value`, `--name=value`, `-name value` or `-n value`; bool flags take
no value (or `=true|false`). Parsing stops at the first positional argument or at `--`, so
`exec ID cmd --flag` passes `--flag` to the command, as runc does.
"""

from __future__ import annotations

from pyruntime.errors import UsageError


class Flag:
    __slots__ = ("names", "kind", "default", "help", "dest")

    def __init__(self, names: str, kind: str = "bool", default=None, help: str = "") -> None:
        self.names = [n.strip() for n in names.split(",")]
        self.kind = kind  # bool | str | int | list
        self.dest = self.names[0].replace("-", "_")
        if default is None:
            default = {"bool": False, "list": []}.get(kind)
        self.default = default
        self.help = help


class Namespace(dict):
    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def parse(flags: list[Flag], argv: list[str], *, interspersed: bool = False,
          command: str = "") -> tuple[Namespace, list[str]]:
    """Return (values, positionals). With interspersed=True flags may follow positionals."""
    by_name = {}
    for f in flags:
        for n in f.names:
            by_name[n] = f
    out = Namespace({f.dest: (list(f.default) if f.kind == "list" else f.default) for f in flags})
    rest: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            rest.extend(argv[i + 1:])
            break
        if not a.startswith("-") or a == "-":
            if not interspersed:
                rest.extend(argv[i:])
                break
            rest.append(a)
            i += 1
            continue
        name, eq, val = a.lstrip("-").partition("=")
        f = by_name.get(name)
        if f is None:
            where = f" for {command}" if command else ""
            raise UsageError(f"flag provided but not defined{where}: -{name}")
        if f.kind == "bool":
            if eq:
                if val.lower() not in ("true", "false", "1", "0"):
                    raise UsageError(f'invalid boolean value "{val}" for -{name}')
                out[f.dest] = val.lower() in ("true", "1")
            else:
                out[f.dest] = True
            i += 1
            continue
        if not eq:
            if i + 1 >= len(argv):
                raise UsageError(f"flag needs an argument: -{name}")
            val = argv[i + 1]
            i += 2
        else:
            i += 1
        if f.kind == "int":
            try:
                out[f.dest] = int(val, 0)
            except ValueError:
                raise UsageError(f'invalid value "{val}" for flag -{name}: parse error') from None
        elif f.kind == "list":
            out[f.dest].append(val)
        else:
            out[f.dest] = val
    return out, rest


def usage(command: str, synopsis: str, flags: list[Flag], description: str = "") -> str:
    lines = [f"NAME:\n   pyruntime {command} - {description}".rstrip(), "",
             f"USAGE:\n   pyruntime {command} {synopsis}", ""]
    if flags:
        lines.append("OPTIONS:")
        for f in flags:
            names = ", ".join(("--" if len(n) > 1 else "-") + n for n in f.names)
            arg = "" if f.kind == "bool" else " value"
            lines.append(f"   {names}{arg}\t{f.help}")
    return "\n".join(lines) + "\n"


def one_id(rest: list[str], command: str) -> str:
    """The one positional argument (a container id) most commands take."""
    if len(rest) != 1:
        raise UsageError(f'"{command}" requires exactly 1 argument(s)')
    return rest[0]


def preserve_fds(n: int) -> int:
    """--preserve-fds N plus $LISTEN_FDS (socket activation), as runc counts them."""
    import os

    listen = os.environ.get("LISTEN_FDS")
    extra = int(listen) if listen and listen.isdigit() else 0
    return max(0, n) + extra
