"""Small parsers for JSON APIs: dotted paths into a body and the HTTP ``Link`` header.

A dotted path names a value inside parsed JSON: ``data.users`` is ``body["data"]["users"]``.
A segment of digits indexes a list (``items.0.id``); a literal dot or backslash inside a key is
escaped with a backslash (``meta.next\\.url``). The empty path is the body itself.
"""

from __future__ import annotations

from typing import Any

from apg.errors import listing


class PathError(ValueError):
    """A dotted path does not lead anywhere in the body; the message says where it stopped."""


def split_path(path: str) -> list[str]:
    """``'a.b\\.c'`` -> ``['a', 'b.c']``; raises :class:`PathError` on an empty segment."""
    if path == "":
        return []
    parts: list[str] = []
    current: list[str] = []
    chars = iter(path)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, None)
            if nxt not in (".", "\\"):
                raise PathError(
                    f"path {path!r}: a backslash must be followed by '.' or '\\' (escape a dot "
                    "inside a key as '\\.')"
                )
            current.append(nxt)
        elif ch == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    if any(p == "" for p in parts):
        raise PathError(f"path {path!r} has an empty segment; write keys separated by single dots")
    return parts


def join_path(parts: list[str]) -> str:
    """The inverse of :func:`split_path`."""
    return ".".join(p.replace("\\", "\\\\").replace(".", "\\.") for p in parts)


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return f"an object with keys {listing(value.keys())}"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    return f"{type(value).__name__} {str(value)[:40]!r}" if value is not None else "null"


def get_path(body: Any, path: str) -> Any:
    """Follow ``path`` into ``body``; a missing step raises :class:`PathError` naming the keys
    that exist at the point where it stopped."""
    value = body
    walked: list[str] = []
    for part in split_path(path):
        where = f"under {join_path(walked)!r}" if walked else "at the top level"
        if isinstance(value, dict):
            if part not in value:
                raise PathError(
                    f"key {part!r} not found {where}; keys there are {listing(value.keys())}"
                )
            value = value[part]
        elif isinstance(value, list) and part.isascii() and part.isdigit():
            if int(part) >= len(value):
                raise PathError(
                    f"index {part} is out of range {where}: the list has {len(value)} item(s)"
                )
            value = value[int(part)]
        else:
            raise PathError(f"cannot take {part!r} {where}: the value there is {_describe(value)}")
        walked.append(part)
    return value


def find_path(body: Any, path: str) -> Any | None:
    """Like :func:`get_path` but ``None`` when the path is absent (a last page's cursor)."""
    try:
        return get_path(body, path)
    except PathError:
        return None


_SPACE = " \t"


def parse_link_header(value: str) -> dict[str, str]:
    """``<https://x/?page=2>; rel="next", <...>; rel="last"`` -> ``{"next": ..., "last": ...}``.

    ``rel`` may list several space-separated relations; the first link for a relation wins
    (RFC 8288). Parameter values may be quoted strings containing ``,`` and ``;``, so the header
    is scanned character by character rather than split on commas. Malformed pieces are
    skipped: a header we cannot read means "no next page", never an exception.
    """
    links: dict[str, str] = {}
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in _SPACE + ",":
            i += 1
        if i >= n:
            break
        end = value.find(">", i) if value[i] == "<" else -1
        if end < 0:  # not a link: skip to the next one
            i = _next_comma(value, i)
            continue
        uri = value[i + 1 : end]
        params, i = _link_params(value, end + 1)
        for rel in params.get("rel", "").split():
            links.setdefault(rel.lower(), uri)
        i = _next_comma(value, i)
    return links


def _link_params(value: str, i: int) -> tuple[dict[str, str], int]:
    """Read ``; name=value`` pairs from position ``i``; returns them and where they end."""
    params: dict[str, str] = {}
    n = len(value)
    while True:
        while i < n and value[i] in _SPACE:
            i += 1
        if i >= n or value[i] != ";":
            return params, i
        i += 1
        while i < n and value[i] in _SPACE:
            i += 1
        start = i
        while i < n and value[i] not in "=;," + _SPACE:
            i += 1
        name = value[start:i].lower()
        while i < n and value[i] in _SPACE:
            i += 1
        text = ""
        if i < n and value[i] == "=":
            i += 1
            while i < n and value[i] in _SPACE:
                i += 1
            if i < n and value[i] == '"':
                chars, i = _quoted(value, i + 1)
                text = chars
            else:
                start = i
                while i < n and value[i] not in ";," + _SPACE:
                    i += 1
                text = value[start:i]
        if name:
            params.setdefault(name, text)


def _quoted(value: str, i: int) -> tuple[str, int]:
    """A quoted string's content from just after its opening quote (backslash escapes)."""
    chars: list[str] = []
    while i < len(value) and value[i] != '"':
        if value[i] == "\\" and i + 1 < len(value):
            i += 1
        chars.append(value[i])
        i += 1
    return "".join(chars), i + 1


def _next_comma(value: str, i: int) -> int:
    """The position after the next comma that is not inside a quoted string."""
    while i < len(value):
        if value[i] == '"':
            _, i = _quoted(value, i + 1)
            continue
        if value[i] == ",":
            return i + 1
        i += 1
    return i


def format_link_header(links: list[tuple[str, str]]) -> str:
    """The inverse of :func:`parse_link_header` for ``(uri, rel)`` pairs (tests, fixtures)."""
    return ", ".join(f'<{uri}>; rel="{rel}"' for uri, rel in links)
