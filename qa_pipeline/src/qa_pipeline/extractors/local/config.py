"""The local extractor's thresholds (one dataclass, the ``local.*`` keys of qa-extract's config)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LocalExtractorConfig:
    """Knobs of the local extractor (defaults fit journal and conference layouts)."""

    min_chars_per_page: int = field(
        default=40, metadata={"help": "below this on average the PDF has no usable text layer"}
    )
    max_heading_words: int = field(default=14, metadata={"help": "longer lines are not headings"})
    size_tolerance: float = field(
        default=0.6, metadata={"help": "points a body line's size may differ from the body size"}
    )
    running_head_share: float = field(
        default=0.3, metadata={"help": "a line at the top/bottom of this share of pages is a running head"}
    )
    margin_share: float = field(
        default=0.09, metadata={"help": "top/bottom share of the page where running heads live"}
    )
