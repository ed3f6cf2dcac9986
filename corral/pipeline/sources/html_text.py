"""A StackExchange post's HTML → its text, as BeautifulSoup (lxml) would give it, without building a tree.

`soup_text` is the reference: BeautifulSoup(html, "lxml") with the post's line-break marks inserted,
then `get_text()`. `post_text` gives the same string from lxml's own parse events: it feeds the
same lxml HTMLParser (recover=True) that BeautifulSoup's lxml builder feeds, and applies to each
event what BeautifulSoup does with it:
- text between two events is one string; a string of ASCII whitespace only becomes "\\n" if it
  holds a newline, else " ", outside <pre> and <textarea> (bs4's preserve_whitespace_tags);
- strings inside <script>, <style>, <template>, <rt>, <rp> (bs4's string containers), comments,
  processing instructions and doctypes are not get_text()'s;
- an end tag closes every tag opened after the last open tag of its name, and none if no tag of
  its name is open (bs4's _popToTag);
- the post's marks: "\\n" in place of each <br> and all it holds, "\\n* " before each <li>, "\\n"
  after each block (BLOCKS).
It is ~20× faster than the tree; markup lxml refuses goes through `soup_text`, so the outcome
(text or exception) is the same.
"""

from __future__ import annotations

import threading

PRESERVE = frozenset(("pre", "textarea"))  # bs4 HTMLTreeBuilder.DEFAULT_PRESERVE_WHITESPACE_TAGS
HIDDEN = frozenset(("rt", "rp", "style", "script", "template"))  # bs4 DEFAULT_STRING_CONTAINERS
BLOCKS = ("p", "pre", "ul", "ol", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6")  # "\n" after each
ASCII_SPACES = "\x20\x0a\x09\x0c\x0d"  # bs4 BeautifulSoup.ASCII_SPACES
_BLOCKS = frozenset(BLOCKS)


def soup_text(html: str) -> str:
    """The reference: BeautifulSoup's tree with <br> replaced by "\\n", "\\n* " before each <li> and
    "\\n" after each block, then get_text()."""
    from bs4 import BeautifulSoup  # here, not at the top: every command that reads a manifest imports this module

    soup = BeautifulSoup(html, "lxml")
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for li in soup.find_all("li"):
        li.insert_before("\n* ")
    for block in soup.find_all(list(BLOCKS)):
        block.insert_after("\n")
    return soup.get_text()


class _Events:
    """lxml parser target: BeautifulSoup's tag stack and string handling, reduced to the text."""

    def reset(self) -> None:
        self.out: list[str] = []
        self.pending: list[str] = []  # text since the last event (bs4's current_data)
        self.stack: list[str] = []
        self.open: dict[str, int] = {}  # open tags by name (bs4's open_tag_counter)
        self.preserve = self.hidden = self.br = 0  # open <pre>/<textarea>, string containers, <br>

    def _flush(self) -> None:  # bs4 endData
        s = "".join(self.pending)
        self.pending.clear()
        if not self.preserve and not s.strip(ASCII_SPACES):
            s = "\n" if "\n" in s else " "
        if not self.hidden and not self.br:
            self.out.append(s)

    def start(self, tag: str, attrib) -> None:
        if self.pending:
            self._flush()
        self.stack.append(tag)
        self.open[tag] = self.open.get(tag, 0) + 1
        if tag in PRESERVE:
            self.preserve += 1
        if tag in HIDDEN:
            self.hidden += 1
        if tag == "br":
            if not self.br:
                self.out.append("\n")
            self.br += 1
        elif tag == "li" and not self.br:
            self.out.append("\n* ")

    def _pop(self) -> None:
        tag = self.stack.pop()
        self.open[tag] -= 1
        if tag in PRESERVE:
            self.preserve -= 1
        if tag in HIDDEN:
            self.hidden -= 1
        if tag == "br":
            self.br -= 1
        elif tag in _BLOCKS and not self.br:
            self.out.append("\n")

    def end(self, tag: str) -> None:
        if self.pending:
            self._flush()
        if not self.open.get(tag):
            return
        while self.stack:
            if self.stack[-1] == tag:
                self._pop()
                return
            self._pop()

    def data(self, text: str) -> None:
        self.pending.append(text)

    def comment(self, text: str) -> None:  # not text, but it ends the string before it
        if self.pending:
            self._flush()

    def pi(self, target: str, data: str) -> None:
        self.comment(data)

    def doctype(self, name: str, pubid: str, system: str) -> None:
        self.comment(name)

    def close(self) -> str:
        if self.pending:
            self._flush()
        while self.stack:
            self._pop()
        return "".join(self.out)


_LOCAL = threading.local()  # one parser per thread: an lxml parser is not shared between threads


def post_text(html: str) -> str:
    """`soup_text(html)`, from lxml's parse events (see the module's docstring)."""
    parser = getattr(_LOCAL, "parser", None)
    if parser is None:
        from lxml import etree  # here, not at the top: every command that reads a manifest imports this module

        _LOCAL.events = _Events()
        parser = _LOCAL.parser = etree.HTMLParser(target=_LOCAL.events, recover=True, huge_tree=False)
    _LOCAL.events.reset()
    try:
        parser.feed(html[1:] if html[:1] == "\ufeff" else html)  # bs4 drops a str's leading BOM
        return parser.close()
    except Exception:  # markup lxml refuses as a str: bs4 tries it as UTF-8 bytes, or raises
        _LOCAL.parser = None  # a parser stopped mid-document starts afresh
        return soup_text(html)
