#!/usr/bin/env python3
"""mdBook preprocessor, run after mdbook-katex: keeps its MathML intact through Markdown.

mdbook-katex replaces every `$…$` / `$$…$$` with KaTeX's MathML before mdBook parses the
Markdown, and the MathML carries the formula's TeX source in an <annotation> element. The
Markdown parser then reads that text as Markdown: `_…_` becomes <em>, which inside <math> makes
the browser leave the formula, and the rest of it shows as raw TeX. This preprocessor turns every
ASCII punctuation character in the text of the rendered formulas (between tags) into a numeric
character reference, which Markdown leaves alone and the browser reads back as the same
character.

mdBook's preprocessor protocol: `supports RENDERER` exits 0; otherwise the `[context, book]` JSON
on stdin, the book's JSON on stdout.
"""

import json
import re
import sys

# A rendered formula: from KaTeX's wrapper to the end of its <math> element.
FORMULA = re.compile(r'<span class="katex(?:-display)?">.*?</math>', re.S)
TEXT = re.compile(r">([^<]+)<")
# Kept as they are: `&`, `#` and `;` spell the references KaTeX already wrote (`&amp;`).
ACTIVE = set("\\`*_[](){}<>!|~+-.:'\"$^=%,?@/")


def safe_text(match):
    text = "".join(f"&#{ord(c)};" if c in ACTIVE else c for c in match.group(1))
    return f">{text}<"


def safe_formula(match):
    return TEXT.sub(safe_text, match.group(0))


def walk(items):
    for item in items:
        chapter = item.get("Chapter") if isinstance(item, dict) else None
        if chapter:
            chapter["content"] = FORMULA.sub(safe_formula, chapter["content"])
            walk(chapter.get("sub_items", []))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "supports":
        return 0
    _context, book = json.load(sys.stdin)
    walk(book.get("items", book.get("sections", [])))
    json.dump(book, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
