"""The whole book as one PDF (``make pdf``, tools/book_pdf.py), read back.

Its text comes from poppler's ``pdftotext`` (seconds for the whole book, where pure-Python
extraction takes a minute); the bookmarks and images from pypdf. Checked: a sane page count,
the title page and its edition, every page of ``_toc.yml`` listed in the contents at the page
where it starts and present in the bookmarks, typeset mathematics, and every kernel-free widget
printed as a grid: each of its frames as an image, captioned with its control values.
"""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "_build" / "html"
PDF = SITE / "_static" / "book.pdf"

if not PDF.is_file():
    pytest.skip(f"no {PDF.relative_to(ROOT)}: run `make pdf` first (`make test` does)",
                allow_module_level=True)

sys.path.insert(0, str(ROOT / "tools"))
from book_pdf import toc_parts  # noqa: E402

PAGES = [name for _, names in toc_parts() for name in names]


def squash(text):
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture(scope="module")
def pages():
    """The text of each page (pdftotext separates pages by form feeds)."""
    assert shutil.which("pdftotext"), "pdftotext missing: apt-get install poppler-utils"
    out = subprocess.run(["pdftotext", "-enc", "UTF-8", str(PDF), "-"], check=True,
                         capture_output=True, text=True).stdout
    return out.split("\f")[:-1]


@pytest.fixture(scope="module")
def reader():
    from pypdf import PdfReader
    return PdfReader(PDF)


def title(name):
    """A page's title as the site shows it (its first h1)."""
    page = (SITE / f"{name}.html").read_text()
    h1 = re.search(r"<h1[^>]*>(.*?)</h1>", page, re.S).group(1)
    return squash(html.unescape(re.sub(r"<[^>]+>", "", h1.replace("#", ""))))


def test_page_count_is_sane(pages, reader):
    assert len(pages) == len(reader.pages)
    # ten chapters, three appendices and a bibliography: well over a hundred pages, and a
    # count far above this would mean something printed many times over
    assert 120 <= len(pages) <= 600, len(pages)


def test_title_page_names_the_book_and_its_edition(pages):
    from curvlib import __version__
    import yaml
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    first = squash(pages[0])
    assert squash(config["title"]) in first
    assert f"Edition {__version__}" in first
    assert config["repository"]["url"] in first


def test_every_page_of_the_toc_starts_where_the_contents_say(pages):
    contents = squash(pages[1])
    assert contents.startswith("Contents")
    for name in PAGES:
        shown = "About this book" if name == PAGES[0] else title(name)
        match = re.search(re.escape(shown) + r" (\d+)", contents)
        assert match, f"{shown!r} ({name}) is not in the contents with a page number"
        start = int(match.group(1))
        assert squash(pages[start - 1]).startswith(shown), (
            f"the contents put {shown!r} on page {start}, which begins "
            f"{squash(pages[start - 1])[:80]!r}")


def test_every_chapter_is_a_bookmark(reader):
    top = [item["/Title"] for item in reader.outline if not isinstance(item, list)]
    for name in PAGES[1:]:
        assert title(name) in top, f"no bookmark for {title(name)!r}: {top}"


def test_mathematics_is_typeset(pages, reader):
    """Raw TeX delimiters would mean MathJax had not finished when Chromium printed; its
    glyphs (web fonts, which Chromium embeds as Type 3 fonts) must be in the file."""
    text = "\n".join(pages)
    assert "\\(" not in text and "\\[" not in text
    type3 = sum(f.get_object().get("/Subtype") == "/Type3" for page in reader.pages
                for f in page.get("/Resources", {}).get("/Font", {}).values())
    assert type3 > 0, "no MathJax glyphs in the book"


def explorers():
    """``(page, names, value labels, number of frames, distinct images)`` of every widget."""
    found = []
    for name in PAGES:
        page = (SITE / f"{name}.html").read_text()
        for block in page.split('<div class="curvlib-explorer">')[1:]:
            data = json.loads(re.search(r'class="cx-data">(.*?)</script>', block, re.S).group(1))
            names = data.get("names") or [
                html.unescape(n) for n in
                re.findall(r'<label class="cx-control"><span>(.*?)</span>', block)]
            found.append((name, names, data["labels"], len(data["frames"]), len(data["images"])))
    return found


def test_the_book_has_widgets_to_print():
    assert len(explorers()) >= 5


def test_every_widget_frame_is_printed_with_its_control_values(pages):
    # spaces removed: where a caption wraps, pdftotext may drop the space at the line end
    text = re.sub(r"\s+", "", "".join(pages))
    for name, names, labels, n_frames, _ in explorers():
        assert len(names) == len(labels)
        combos = [[]]
        for n, values in zip(names, labels):
            combos = [c + [f"{n} = {v}"] for c in combos for v in values]
        assert len(combos) == n_frames
        missing = [", ".join(c) for c in combos if re.sub(r"\s+", "", ", ".join(c)) not in text]
        assert not missing, f"{name}: frames without their caption in the PDF: {missing[:3]}"


def _images(resources):
    count = 0
    for obj in (resources or {}).get("/XObject", {}).values():
        obj = obj.get_object()
        if obj.get("/Subtype") == "/Image":
            count += 1
        elif obj.get("/Subtype") == "/Form":
            count += _images(obj.get("/Resources"))
    return count


def test_every_widget_frame_is_an_image_in_the_pdf(reader):
    frames = sum(n_images for *_, n_images in explorers())
    figures = len({src for name in PAGES for src in re.findall(
        r'<img [^>]*src="[^"]*_images/([^"]+)"', (SITE / f"{name}.html").read_text())})
    images = sum(_images(page.get("/Resources")) for page in reader.pages)
    assert images >= frames + figures, (images, frames, figures)


def test_the_site_links_the_pdf():
    index = (SITE / "index.html").read_text()
    assert 'href="_static/book.pdf"' in index
    chapter = (SITE / "chapters" / "01_fundamental_question.html").read_text()
    assert 'href="../_static/book.pdf"' in chapter
