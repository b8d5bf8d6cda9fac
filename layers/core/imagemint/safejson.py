"""JSON from clients, parsed under limits: no document can crash, stall or 500 the process.

:func:`parse_json` is what every JSON body (the POST dialects, ``api.http``) and every
ingested request file (``domain.ingest``) goes through. Depth and the number of
objects and arrays are checked before decoding, in linear time and without
recursion, so the answer does not depend on the process's recursion limit (py_ecc,
imported with web3 by the chain adapters, raises it to 100,000: a decoder
recursing that deep overflows the C stack and kills the process). Integers over
4,300 digits (Python refuses to convert them, with a ``ValueError``), NaN,
Infinity and numbers that overflow a double are refused while decoding; lone
UTF-16 surrogates after (only when the text has a surrogate escape at all). No
per-integer Python callback runs, so a 5 MB array of small values decodes at
the decoder's C speed. Every refusal is an
:class:`~imagemint.errors.InvalidRequest` (400) naming the problem. Only the
standard library and :mod:`imagemint.errors`.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from typing import Any

from imagemint.errors import InvalidRequest

MAX_JSON_DEPTH = 32  # objects and arrays nested in each other
MAX_JSON_CONTAINERS = 1024  # objects and arrays in one document
MAX_INT_DIGITS = 4300  # Python's own limit on converting a decimal string (sys.get_int_max_str_digits)

# Possessive quantifiers: an unterminated string fails in one pass, without backtracking.
_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"')
# A \uD800-\uDFFF escape: the only way a lone surrogate gets into a string (UTF-8 cannot carry one).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_BRACKET = re.compile(r"[\[\]{}]")


def _check_nesting(text: str) -> None:
    """Refuse bodies nested deeper than :data:`MAX_JSON_DEPTH` before the (recursive) decoder sees them.

    Linear time and no recursion, so the answer does not depend on the process's recursion limit
    (py_ecc, imported with web3, raises it to 100,000: a decoder recursing that deep overflows the C
    stack). Brackets inside strings do not count; an unterminated string can only over-count.
    """
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return
    structure = _STRING.sub("", text) if '"' in text else text
    opened = structure.count("[") + structure.count("{")
    if opened <= MAX_JSON_DEPTH:
        return
    # Depth over the first brackets only (one Python step each): a body with more containers than
    # that is refused anyway, so the loop stays short whatever the body.
    depth = 0
    for match in itertools.islice(_BRACKET.finditer(structure), 2 * MAX_JSON_CONTAINERS + 2):
        if match.group() in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise InvalidRequest(f"JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
        else:
            depth -= 1
    if opened > MAX_JSON_CONTAINERS:
        raise InvalidRequest(f"JSON body has more than {MAX_JSON_CONTAINERS} objects and arrays")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidRequest("JSON body has a number too large for a double (it would be Infinity)")
    return value


def _no_constant(name: str) -> Any:
    raise InvalidRequest(f"JSON body has {name}, which is not JSON")


def _check_strings(data: Any) -> None:
    """Every string (and key) must be encodable as UTF-8: a lone surrogate escape (``\\ud800``) is a 400."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            strings: Any = (item,)
        elif isinstance(item, dict):
            strings = item.keys()
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
            continue
        else:
            continue
        for text in strings:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidRequest("JSON body has a string with a lone UTF-16 surrogate") from None


def parse_json(raw: bytes | str) -> Any:
    """A JSON document under the limits above; every refusal is an :class:`InvalidRequest` (400).

    UTF-8 only (a byte-order mark is skipped); depth and container count are checked before
    decoding, number length while decoding, lone surrogates after. NaN and Infinity are refused.
    """
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("JSON body is not valid UTF-8") from None
    else:
        text = raw
    text = text.removeprefix("\ufeff")
    _check_nesting(text)
    try:
        data = json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"Malformed JSON body (line {exc.lineno}, column {exc.colno})") from None
    except ValueError:  # int() of a number over the 4,300-digit limit
        raise InvalidRequest(f"JSON body has a number of more than {MAX_INT_DIGITS} digits") from None
    except RecursionError:  # belt and braces: the depth check above should have refused it
        raise InvalidRequest(f"JSON body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    if _SURROGATE_ESCAPE.search(text):
        _check_strings(data)
    return data
