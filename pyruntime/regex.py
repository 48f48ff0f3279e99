"""Regular expressions compiled at build time: `re`'s compiler output, loaded without `import re`.

`import re` costs ~5 ms here (enum, and re's parser and compiler, which are Python), and every
create and exec validates a config whose schema has patterns. The patterns are fixed, so the
generator (scripts/gen-validator.py) runs re's compiler once and stores what it produces for the
C engine, `_sre`; at run time `_sre.compile` makes from it the same pattern object `re.compile`
would make. Another engine (another Python version: `_sre.MAGIC`) gets `re.compile` instead.
"""

from __future__ import annotations

import _sre

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def patterns(table: dict[str, tuple], magic: int) -> dict[str, Any]:
    """{key: compiled pattern} from {key: (pattern, flags, code, groups, groupindex, indexgroup)}
    made by `precompile` with an engine whose MAGIC was `magic`."""
    if _sre.MAGIC == magic:
        try:
            return {key: _sre.compile(src, flags, list(code), groups, dict(gi), tuple(ig))
                    for key, (src, flags, code, groups, gi, ig) in table.items()}
        except (TypeError, ValueError, RuntimeError):  # a changed _sre.compile signature
            pass
    import re

    return {key: re.compile(entry[0]) for key, entry in table.items()}


def precompile(pattern: str) -> tuple:
    """(pattern, flags, code, groups, groupindex, indexgroup): what re.compile(pattern) hands to
    _sre.compile (re._compiler.compile, without the call). Build time only."""
    from re import _compiler, _parser  # type: ignore[attr-defined]

    p = _parser.parse(pattern, 0)
    code = _compiler._code(p, 0)
    groupindex = dict(p.state.groupdict)
    indexgroup = [None] * p.state.groups
    for k, i in groupindex.items():
        indexgroup[i] = k
    return (pattern, int(p.state.flags), [int(c) for c in code], p.state.groups - 1, groupindex, tuple(indexgroup))
