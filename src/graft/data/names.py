"""Names graft writes must read back unchanged: class names and file paths (split.csv, graft.json), labels.

A control character (\\x00-\\x1f, \\x7f-\\x9f: newline, carriage return, tab, NUL, ...) or a Unicode line or
paragraph separator in one of them is refused with an error naming it, rather than written and then read
back as something else (a row cut in two, a file that "does not exist" on resume). Texts to classify may
hold them: csv quoting round-trips those.
"""

from __future__ import annotations

import re
from pathlib import Path

from graft.errors import GraftError

CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
WHY = "the names graft writes to split.csv and graft.json must read back unchanged"


def control_character(name: str) -> str | None:
    """The first control character (or line/paragraph separator) in `name`, or None."""
    found = CONTROL_CHARACTERS.search(name)
    return found.group() if found else None


def shown(path: Path | str) -> str:
    """`path` for a one-line message: as is, or as its repr when it holds a control character."""
    return repr(str(path)) if control_character(str(path)) else str(path)


def refuse_in_path(path: Path, kind: str = "folder") -> None:
    """GraftError naming the first part of `path` (a file or folder name) that holds a control character."""
    path = Path(path)
    parts = path.parts
    for i, part in enumerate(parts):
        char = control_character(part)
        if char is not None:
            what = kind if i == len(parts) - 1 else "folder"
            parent = Path(*parts[:i]) if i else Path(".")
            raise GraftError(
                f"the {what} name {part!r} (in {parent}) contains the control character {char!r}; "
                f"rename the {what} ({WHY})"
            )
