"""prescan_toml: bounding TOML (key parts, nesting) before tomllib sees it."""

from __future__ import annotations

import re

from workers.ml.dataspec.base import MAX_KEY_PARTS, MAX_NESTING, SpecError

_TOML_SPACE = re.compile(r"[ \t]*")
_TOML_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_BASIC = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_TOML_LITERAL = re.compile(r"'[^'\n]*'")
_TOML_ML_BASIC_END = re.compile(r'\\[\s\S]|"""')
_TOML_VALUE_RUN = re.compile(r"[^\"'#\[\]{},\n]*")


def prescan_toml(
    text: str, *, max_key_parts: int = MAX_KEY_PARTS, max_nesting: int = MAX_NESTING
) -> None:
    """Refuse TOML that would make tomllib slow, huge or recurse, in one linear pass.

    tomllib's cost grows with the square of a dotted key's parts (a 16 KB key took
    264 MB) and it recurses on each [ or {, so a few KB of brackets is a
    RecursionError. This lexer follows TOML's structure far enough to tell keys
    from values and strings from code: up to the first syntax error it sees what
    tomllib sees, and after that error tomllib stops reading anyway.
    """
    pos, end, line = 0, len(text), 1
    stack: list[str] = []
    want_key = True
    while pos < end:
        if want_key:
            pos = _TOML_SPACE.match(text, pos).end()  # type: ignore[union-attr]
            if pos >= end:
                break
            char = text[pos]
            if char in "\r\n":
                line += char == "\n"
                pos += 1
                continue
            if char == "#":
                pos = _line_end(text, pos)
                continue
            if char == "}" and stack and stack[-1] == "{":
                want_key = False  # an empty inline table; the value loop pops it
                continue
            if char == "[" and not stack:  # a table header: [a.b] or [[a.b]]
                pos += 2 if text.startswith("[[", pos) else 1
            pos = _scan_key(text, pos, line, max_key_parts)
            want_key = False
            continue
        pos = _TOML_VALUE_RUN.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= end:
            break
        char = text[pos]
        if char == "\n":
            line += 1
            pos += 1
            want_key = not stack
        elif char == "#":
            pos = _line_end(text, pos)
        elif char in "\"'":
            after = _skip_string(text, pos)
            if after is None:
                return  # unterminated: tomllib stops here with its own message
            line += text.count("\n", pos, after)
            pos = after
        elif char in "[{":
            stack.append(char)
            if len(stack) > max_nesting:
                raise SpecError(
                    f"line {line}: arrays and inline tables nested more than "
                    f"{max_nesting} deep; a dataset spec needs two or three levels"
                )
            pos += 1
            want_key = char == "{"
        elif char in "]}":
            if stack:
                stack.pop()
            pos += 1
        else:  # ","
            pos += 1
            want_key = bool(stack) and stack[-1] == "{"


def _line_end(text: str, pos: int) -> int:
    found = text.find("\n", pos)
    return len(text) if found < 0 else found


def _skip_string(text: str, pos: int) -> int | None:
    """Where the string starting at pos ends, or None if it does not."""
    quote = text[pos]
    if text.startswith(quote * 3, pos):
        if quote == '"':
            scan = pos + 3
            while True:
                match = _TOML_ML_BASIC_END.search(text, scan)
                if match is None:
                    return None
                scan = match.end()
                if match.group() == '"""':
                    break
        else:
            found = text.find("'''", pos + 3)
            if found < 0:
                return None
            scan = found + 3
        # Up to two more quotes right before the closing three belong to the text.
        extra = 0
        while extra < 2 and text.startswith(quote, scan + extra):
            extra += 1
        return scan + extra
    pattern = _TOML_BASIC if quote == '"' else _TOML_LITERAL
    match = pattern.match(text, pos)
    return None if match is None else match.end()


def _scan_key(text: str, pos: int, line: int, max_parts: int) -> int:
    """Skip a (dotted) key starting at pos; refuse one of too many parts."""
    parts = 0
    while True:
        pos = _TOML_SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if pos < len(text) and text[pos] in "\"'":
            match = (_TOML_BASIC if text[pos] == '"' else _TOML_LITERAL).match(
                text, pos
            )
        else:
            match = _TOML_BARE_KEY.match(text, pos)
        if match is None:
            return pos  # not a key: tomllib reports it
        pos = match.end()
        parts += 1
        if parts > max_parts:
            raise SpecError(
                f"line {line}: a dotted key of more than {max_parts} parts; a "
                "dataset spec's keys have one to three"
            )
        pos = _TOML_SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if not text.startswith(".", pos):
            return pos
        pos += 1
