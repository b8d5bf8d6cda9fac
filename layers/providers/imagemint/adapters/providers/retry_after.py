"""``Retry-After`` as a number of whole seconds, from either of its HTTP forms (seconds or a date)."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

DEFAULT_RETRY_AFTER = 30


def seconds_from(value: Any, default: int = DEFAULT_RETRY_AFTER) -> int:
    """``value`` (``"7"``, ``"1.5"`` or an HTTP date) rounded up to at least 1 s; ``default`` if unusable."""
    if value:
        value = str(value).strip()
        try:
            return max(1, int(float(value) + 0.999))
        except ValueError:
            try:
                return max(1, int(parsedate_to_datetime(value).timestamp() - time.time() + 0.999))
            except (TypeError, ValueError, OverflowError):
                pass
    return default
