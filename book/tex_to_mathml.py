#!/usr/bin/env python3
"""mdBook preprocessor: the book's math ($…$ and $$…$$, as the notebooks write it) to MathML.

Browsers typeset MathML natively: no script, no font or stylesheet from a CDN, works offline.
The TeX is converted at build time by latex2mathml (PyPI, pure Python: `book/requirements.txt`).

- `$$…$$` is a display formula, `$…$` an inline one; nothing inside fenced code blocks or
  inline code spans is touched, and `\\$` is a literal dollar sign.
- A formula that does not convert, or converts with a TeX command left over (latex2mathml
  passes an unknown `\\foo` through as text), fails the build, naming the chapter and the
  formula: a reader never sees raw TeX.
- The MathML then goes through mdBook's Markdown parser, which would read `_…_` in it as
  emphasis and break the formula apart: every ASCII punctuation character in the text between
  tags becomes a numeric character reference, which Markdown leaves alone and the browser reads
  back as the same character.

mdBook's preprocessor protocol: `supports RENDERER` exits 0; otherwise the `[context, book]`
JSON on stdin, the book's JSON on stdout.
"""

import json
import re
import sys

from latex2mathml.converter import convert

# Code first (left as it is), then display math, then inline math. An inline formula neither
# starts nor ends with a space ("costs $5 and $6" is not math), as in Pandoc, and may run on to
# the next line but not across a blank line.
TOKEN = re.compile(
    r"(?P<fence>^(?P<ticks>```+|~~~+)[^\n]*\n.*?^(?P=ticks)[ \t]*$)"
    r"|(?P<code>(?P<bt>`+).+?(?P=bt))"
    r"|(?P<escaped>\\\$)"
    r"|\$\$(?P<display>.+?)\$\$"
    r"|\$(?P<inline>[^\s$](?:(?:[^$\n]|\n(?![ \t]*\n))*[^\s$])?)\$",
    re.S | re.M,
)
TEXT = re.compile(r">([^<]+)<")
LEFTOVER_COMMAND = re.compile(r"\\[A-Za-z]+")
# Kept as they are: `&`, `#` and `;` spell the character references latex2mathml writes.
ACTIVE = set("\\`*_[](){}<>!|~+-.:'\"$^=%,?@/")


class FormulaError(Exception):
    pass


def markdown_safe(mathml):
    def safe_text(match):
        text = "".join(f"&#{ord(c)};" if c in ACTIVE else c for c in match.group(1))
        return f">{text}<"

    return TEXT.sub(safe_text, mathml)


def render(tex, display):
    try:
        mathml = convert(tex.strip(), display="block" if display else "inline")
    except Exception as e:  # latex2mathml raises its own error types, one per mistake
        raise FormulaError(f"{type(e).__name__} {e}".strip()) from None
    left = [m for t in TEXT.findall(mathml) for m in LEFTOVER_COMMAND.findall(t)]
    if left:
        raise FormulaError(f"unknown TeX command {left[0]}")
    return markdown_safe(mathml)


def render_chapter(content, where):
    def replace(match):
        if match.group("fence") or match.group("code"):
            return match.group(0)
        if match.group("escaped"):
            return "$"
        display = match.group("display") is not None
        tex = match.group("display") if display else match.group("inline")
        try:
            return render(tex, display)
        except FormulaError as e:
            line = content.count("\n", 0, match.start()) + 1
            raise FormulaError(f"{where}:{line}: the formula `{match.group(0)}` does not "
                               f"convert to MathML: {e}") from None

    return TOKEN.sub(replace, content)


def walk(items):
    for item in items:
        chapter = item.get("Chapter") if isinstance(item, dict) else None
        if chapter:
            where = chapter.get("source_path") or chapter.get("name", "?")
            chapter["content"] = render_chapter(chapter["content"], f"book/src/{where}")
            walk(chapter.get("sub_items", []))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "supports":
        return 0
    _context, book = json.load(sys.stdin)
    try:
        walk(book.get("items", book.get("sections", [])))
    except FormulaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    json.dump(book, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
