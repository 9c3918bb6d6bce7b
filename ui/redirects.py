"""Redirect targets and response header values the access gate builds from what a client sent (ui/access_gate.py).

A target is built, never copied: cleaned the way a browser reads a URL, accepted only as a path on this origin,
re-emitted percent-encoded; a value that would put control or non-ASCII characters into a header is a BadRequest (400).
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

# What a URL parser strips from the ends (C0 controls and space) and drops anywhere (tab, CR, LF):
# the WHATWG URL standard, which Chromium and Firefox follow.
_ENDS = "".join(map(chr, range(0x21)))
_DROPPED = str.maketrans("", "", "\t\r\n")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Kept as they are in a re-emitted path/query: RFC 3986 unreserved and sub-delims, ':@/' and '%'
# (existing escapes stay escapes); everything else, non-ASCII included, is percent-encoded.
_PATH_SAFE = "/-._~!$&'()*+,;=:@%"
_QUERY_SAFE = _PATH_SAFE + "?"


class BadRequest(ValueError):
    """The request cannot be answered without copying control characters or unreadable bytes: 400."""


def safe_target(target: str) -> str:
    """A redirect target on this server built from `target`, or "/": what a browser would do with it is decided first.

    A browser drops tab/CR/LF anywhere in a URL, strips C0 controls and spaces at its ends and reads
    backslashes as slashes, so "/\\t/evil", " //evil" and "/\\evil" all mean "//evil", another host. The
    cleaned target must be a path with no scheme and no host; only its path and query are re-emitted,
    percent-encoded, so the result is printable ASCII starting with exactly one "/".
    """
    cleaned = target.strip(_ENDS).translate(_DROPPED).replace("\\", "/")
    if not cleaned.startswith("/") or cleaned.startswith("//"):  # "///host" is a host to a browser, too
        return "/"
    try:
        parts = urlsplit(cleaned)
    except ValueError:  # e.g. "//[evil": an unparsable host is no path of ours either
        return "/"
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return "/"
    path = quote(parts.path, safe=_PATH_SAFE)
    query = quote(parts.query, safe=_QUERY_SAFE)
    return path + ("?" + query if query else "")


def _refuse_controls(*texts: str) -> None:
    """A login target holding control characters is no link a browser sends: 400, nothing copied."""
    if any(_CONTROL.search(t) for t in texts):
        raise BadRequest("control characters in the address")


def _header_value(text: str) -> bytes:
    """A response header value: printable ASCII only, else BadRequest (a 400, never a server traceback)."""
    if _CONTROL.search(text) or not text.isascii():
        raise BadRequest("a header value would hold control or non-ASCII characters")
    return text.encode("ascii")
