"""Parsing helpers for report tests: the embedded card JSON and elements with their attributes."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser


def cards_json(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="cards-data">(.*?)</script>', html, re.S)
    assert match, "the report has no cards-data block"
    return json.loads(match.group(1))


class Elements(HTMLParser):
    """Start tags with their attributes and the text inside them (for elements carrying data-*)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[dict] = []
        self._open: list[dict] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        element = {"tag": tag, "attrs": attrs, "text": ""}
        self.elements.append(element)
        if tag not in ("br", "img", "meta", "link", "input", "line", "circle", "polyline"):
            self._open.append(element)

    def handle_endtag(self, tag):
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i]["tag"] == tag:
                del self._open[i:]
                break

    def handle_data(self, data):
        for element in self._open:
            element["text"] += data


def parse(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    return parser
