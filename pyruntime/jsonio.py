"""JSON for the hot path: the stdlib's C accelerator (`_json`) without the `json` package.

`import json` costs ~7 ms here, most of it `re` and `enum`, which `json.decoder` and
`json.encoder` import to compile regexes for their pure-Python fallbacks; every command reads or
writes JSON, and for `state`/`kill`/`start` that import was a third of the run time. These are
the same C scanner and encoder `json.loads`/`json.dumps` use (same output byte for byte, checked
by tests/test_jsonio.py against `json`); only the pretty-printer for `indent=` output, which the
stdlib does in Python too, is written here. Errors raise `json.JSONDecodeError` (imported then).
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _Ctx:
    """What `_json.make_scanner` reads from a JSONDecoder: the defaults of `json.loads`."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


class _StrictCtx(_Ctx):
    @staticmethod
    def parse_constant(name: str) -> float:
        raise ValueError(f"invalid number {name}")


_scan = _json.make_scanner(_Ctx())
_scan_strict = _json.make_scanner(_StrictCtx())
_WS = " \t\n\r"


def loads(s: str | bytes, *, constants: bool = True) -> Any:
    """json.loads(s); constants=False refuses NaN/Infinity with ValueError (as JSON itself does)."""
    if isinstance(s, (bytes, bytearray)):
        s = s.decode("utf-8-sig" if s[:3] == b"\xef\xbb\xbf" else "utf-8")
    idx = len(s) - len(s.lstrip(_WS))
    scan = _scan if constants else _scan_strict
    try:
        obj, end = scan(s, idx)
    except StopIteration as e:
        _fail("Expecting value", s, e.value)
    except SystemError:
        # The C scanner builds its JSONDecodeError from json.decoder only if that module is
        # already loaded, else it fails without an exception: load it, scan again for the error.
        import json.decoder  # noqa: F401

        obj, end = scan(s, idx)
    if s[end:].strip(_WS):
        _fail("Extra data", s, end + len(s[end:]) - len(s[end:].lstrip(_WS)))
    return obj


def load_file(path: str) -> Any:
    with open(path, "rb") as f:
        return loads(f.read())


def _fail(msg: str, doc: str, pos: int):
    from json import JSONDecodeError

    raise JSONDecodeError(msg, doc, pos)


def _encoder(item_sep: str, key_sep: str):
    return _json.make_encoder(None, None, _json.encode_basestring_ascii, None, key_sep, item_sep,
                              False, False, True)


_compact = _encoder(",", ":")
_spaced = _encoder(", ", ": ")


def dumps(obj: Any, *, indent: int | None = None, compact: bool = False) -> str:
    """json.dumps(obj) (separators ", " and ": "); `compact` gives separators=(",", ":");
    `indent=N` gives json.dumps(obj, indent=N)."""
    if indent is None:
        return "".join((_compact if compact else _spaced)(obj, 0))
    out: list[str] = []
    _pretty(obj, " " * indent, "\n", out)
    return "".join(out)


def _pretty(obj: Any, step: str, nl: str, out: list[str]) -> None:
    """json.dumps' indent layout: one member per line, `[]`/`{}` for empty containers."""
    if isinstance(obj, dict) and obj:
        inner = nl + step
        out.append("{")
        first = True
        for k, v in obj.items():
            out.append(inner if first else "," + inner)
            first = False
            out.append(_key(k))
            out.append(": ")
            _pretty(v, step, inner, out)
        out.append(nl + "}")
    elif isinstance(obj, (list, tuple)) and obj:
        inner = nl + step
        out.append("[")
        for i, v in enumerate(obj):
            out.append(inner if i == 0 else "," + inner)
            _pretty(v, step, inner, out)
        out.append(nl + "]")
    else:
        out.extend(_spaced(obj, 0))


def _key(k: Any) -> str:
    """json.dumps' key coercion: str as is; bool, None, int, float to their JSON text."""
    if isinstance(k, str):
        return _json.encode_basestring_ascii(k)
    return _json.encode_basestring_ascii("".join(_compact(k, 0)) if not isinstance(k, bool | None) else
                                         {True: "true", False: "false", None: "null"}[k])
