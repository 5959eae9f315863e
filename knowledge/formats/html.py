"""HTML pages: the main text only (trafilatura), as markdown so headings keep their `##` marks.

Navigation, scripts, styles, headers, footers and other boilerplate are dropped by trafilatura.
Nothing is ever fetched: the page is parsed from the file's bytes (encoding from its meta charset
or detected), and links are only read, never followed.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from knowledge.formats import FileText, UnreadableFile

if TYPE_CHECKING:
    from configparser import ConfigParser

    from lxml.html import HtmlElement

# trafilatura escapes markdown's inline characters (`order\_id`, `\*`); undone so the text reads and
# keyword-matches like the page. Backticks and the escapes of block starts (`\#`, `\-`) stay, so a
# paragraph that starts with "#" is never taken for a heading by the chunker.
_INLINE_ESCAPE = re.compile(r"\\([*_~\[\]<])")


def read_html(path: Path) -> FileText:
    """Main text of an HTML page; title from <title>/og:title/<h1>, source from its canonical URL or og:url."""
    import trafilatura
    from trafilatura.metadata import extract_metadata
    from trafilatura.utils import load_html

    raw = path.read_bytes()
    if not raw.strip():
        raise UnreadableFile("empty file")
    try:
        tree = load_html(raw)
        if tree is None:
            raise UnreadableFile("not an HTML document")
        source = _page_url(tree)
        title = extract_metadata(tree, extensive=False).title or ""
        text = trafilatura.extract(
            tree,
            output_format="markdown",
            include_comments=False,
            include_images=False,
            include_links=False,
            include_tables=True,
            config=_config(),
        )
    except UnreadableFile:
        raise
    except Exception as err:  # a parser bug on one odd page must not stop the batch
        raise UnreadableFile(f"cannot extract the main text ({type(err).__name__}: {err})") from err
    text = _INLINE_ESCAPE.sub(r"\1", text or "").strip()
    if not text:
        raise UnreadableFile("no main text found (only navigation or boilerplate?)")
    return FileText(text=text, title=" ".join(title.split()), source=source)


@cache
def _config() -> ConfigParser:
    """trafilatura's defaults, except that a short article is kept as found.

    By default a main text under 250 characters is "rescued" by a dump of the whole page, navigation
    and footer included; short help-center answers are the norm here, so that rescue is turned off.
    """
    from trafilatura.settings import use_config

    config = use_config()
    config.set("DEFAULT", "MIN_EXTRACTED_SIZE", "1")
    return config


def _page_url(tree: HtmlElement) -> str:
    """The page's own absolute URL: `<link rel="canonical">`, else `og:url`; "" when neither is usable."""
    candidates = [
        link.get("href", "") for link in tree.iter("link") if "canonical" in (link.get("rel") or "").lower().split()
    ]
    candidates += [
        meta.get("content", "")
        for meta in tree.iter("meta")
        if (meta.get("property") or meta.get("name") or "").lower() == "og:url"
    ]
    for url in candidates:
        parts = urlsplit(url.strip())
        if parts.scheme in ("http", "https") and parts.netloc:
            return url.strip()
    return ""
