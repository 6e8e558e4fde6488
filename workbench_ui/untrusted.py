"""Untrusted text (run parameters and errors, alert names and annotations from Alertmanager,
values from a link's query string) shown inside Streamlit's Markdown as the text it is.

Streamlit renders labels, captions, ``st.write`` strings and the ``st.error``/``st.warning``
family as Markdown: a value holding ``[text](https://…)`` or a backtick that closes a code span
would draw a live link or formatting. :func:`text` backslash-escapes every character that can open
a Markdown construct (CommonMark lets any ASCII punctuation be escaped), so links, autolinks
(``http://``, ``www.``, e-mail: GFM finds those in the rendered text, so an invisible word joiner
goes before the scheme and after the ``@``), images, HTML, code, emphasis, math, headings, lists and Streamlit's
directives (``:red[…]``, ``:material/…:``) show as the characters they are. Punctuation that opens
nothing (``' " , ; = ? / %``, a ``.`` or ``-`` inside a line) is left alone, so messages read as
written.
"""

from __future__ import annotations

import re

# Characters that open a construct anywhere in a line.
_ANYWHERE = re.compile(r"([\\`*_\[\]()<>#!|~$:{}&@])")
# ``www.`` starts an autolink; a line opening with these starts a list, quote, heading or rule.
_WWW = re.compile(r"(?i)(www)\.")
# GFM also links ``http(s)://…``, ``www.…`` and ``a@b.c`` found in the *rendered* text (after escapes
# are resolved), unless a letter-like character precedes the scheme or follows the ``@``: an
# invisible WORD JOINER there keeps them text.
_AUTOLINK = re.compile(r"(?i)(?=https?\\?:|www\\?\.)|(?<=\\@)")
WORD_JOINER = "\u2060"
_LINE_START = re.compile(r"(?m)^([ \t]*)([-+=]|\d+(?=\.))")


def _line_start(match: re.Match[str]) -> str:
    indent, opener = match.groups()
    # ``1.`` opens an ordered list: escape its dot; ``-``, ``+``, ``=`` open a list or a rule.
    return f"{indent}{opener}\\" if opener.isdigit() else f"{indent}\\{opener}"


def text(value: object) -> str:
    """``value`` as Markdown that renders as exactly its text (nothing in it is interpreted), with
    its line breaks kept as breaks."""
    escaped = _ANYWHERE.sub(r"\\\1", str(value).replace("\r\n", "\n"))
    escaped = _WWW.sub(r"\1\\.", escaped)
    escaped = _LINE_START.sub(_line_start, escaped)
    escaped = _AUTOLINK.sub(WORD_JOINER, escaped)
    return escaped.replace("\n", "  \n")
