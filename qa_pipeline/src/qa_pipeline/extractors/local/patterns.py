"""The names of a paper's parts as the local extractor recognises them in a line of text: the
"Abstract" and "References" headings, an "Abstract:" prefix, a keywords line and a figure or table
caption (used both to find headings and to cut the text into regions at them)."""

from __future__ import annotations

import re

REFERENCES = re.compile(r"^(references|bibliography|literature cited|works cited|references and notes)$", re.I)
ABSTRACT = re.compile(r"^(abstract|summary)$", re.I)
ABSTRACT_PREFIX = re.compile(r"^(abstract|summary)\s*[.:\u2014\u2013-]\s*", re.I)
KEYWORDS = re.compile(r"^(keywords|key words|index terms)\b", re.I)
CAPTION = re.compile(r"^(fig\.?|figure|table|tab\.)\s*\d+[a-z]?\s*[:.|]?", re.I)
