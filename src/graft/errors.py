"""The one exception type for problems the user can fix.

Anything raised as `GraftError` is printed by the CLI as a single line on stderr with exit code 2, and
never as a traceback: the message must name the file, field or value at fault and say what to do.
Everything else is a bug in graft and keeps its traceback.
"""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable


class GraftError(Exception):
    """A user-facing error: bad input, bad config, missing file. One line, actionable."""


# What a full disk, a quota, a file size limit, a read-only or locked-down folder say. Other OSErrors (too
# many open files, a vanished data file, a network error, a bug) are not the user's to fix: they keep their
# traceback.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})


class WriteFailed(GraftError):
    """A file of the run could not be written (a full disk, a read-only folder): the run stops resumable,
    its last checkpoint intact."""


def did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> str:
    """' (did you mean: a, b?)' for close matches of `word`, or '' when nothing is close."""
    matches = difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)
    return f" (did you mean: {', '.join(matches)}?)" if matches else ""
