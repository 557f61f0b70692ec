"""The whole book as one PDF (``make pdf``): ``_build/html/_static/book.pdf``.

Route: the built website, printed by Debian's Chromium through Playwright. Both are already
needed by the browser tests, so the PDF costs no TeX installation (several GB from Debian)
and shows exactly what the site shows: the same MathJax typesetting, the same figures, the
same tables. How:

1. ``_build/html`` (``make book``) is served on 127.0.0.1 and the intro page is opened with
   print media. Its body is replaced by one article: a title page, the contents, then every
   page of ``_toc.yml`` in order (intro, chapters, appendices, bibliography), each fetched from
   the site. Ids get a per-page prefix and links between pages become links inside the
   document, so cross-references and citations still jump to their target.
2. MathJax (served by the site) typesets the combined page; every kernel-free widget becomes
   a grid of all its frames with the control values as captions (``_static/curvlib-print.js``,
   the same hook the browser's Print uses); the print styles in ``_static/curvlib.css`` wrap
   code and hide the site's navigation.
3. Chromium prints it twice: the first PDF says on which page each chapter starts (its named
   destinations), the contents are filled in with those numbers, and the second print is the
   book, with page numbers, a bookmark outline and tags (headings, alternative text).

Usage: ``python tools/book_pdf.py [--out PATH]``.
"""
from __future__ import annotations

import argparse
import datetime
import functools
import http.server
import io
import sys
import threading
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "_build" / "html"
OUT = SITE / "_static" / "book.pdf"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
MARGIN = {"top": "18mm", "bottom": "20mm", "left": "17mm", "right": "17mm"}
TEXT_WIDTH_PX = round((210 - 17 - 17) / 25.4 * 96)
FOOTER = ('<div style="width:100%;font-size:8pt;color:#555;text-align:center;'
          'font-family:sans-serif"><span class="pageNumber"></span></div>')


def toc_parts():
    """``[(caption, [page, ...]), ...]`` from ``_toc.yml``; the root page comes first."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    parts = [("", [toc["root"]])]
    for part in toc.get("parts", []):
        parts.append((part.get("caption", ""), [c["file"] for c in part.get("chapters", [])]))
    return parts


def book_meta():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    sys.path.insert(0, str(ROOT))
    from curvlib import __version__  # the one version number (pyproject.toml)
    return {"title": config["title"], "author": config.get("author", ""),
            "version": __version__, "repository": config["repository"]["url"],
            "date": datetime.date.today().strftime("%B %Y")}


# Runs in the intro page: builds the book in place of the page's body. Returns the number of
# widgets turned into grids.
ASSEMBLE_JS = r"""
async ({parts, meta}) => {
  const base = new URL(".", location.href);
  const pages = parts.flatMap(p => p[1]);
  const prefix = name => "b" + pages.indexOf(name) + "-";
  const pageOf = url => {
    const u = new URL(url, base);
    if (u.origin !== base.origin) return null;
    const path = decodeURIComponent(u.pathname.slice(base.pathname.length)).replace(/\.html$/, "");
    return pages.includes(path) ? path : undefined;   // undefined: this site, not in the book
  };
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };

  const book = el("article", "bd-article curvlib-book");
  const titles = {};
  const sections = [];
  for (const name of pages) {
    const url = new URL(name + ".html", base);
    const response = await fetch(url);
    if (!response.ok) throw new Error(url + ": HTTP " + response.status);
    const html = await response.text();
    const doc = new DOMParser().parseFromString(html, "text/html");
    const article = doc.querySelector("article.bd-article");
    article.querySelectorAll(".headerlink, script:not(.cx-data), .toctree-wrapper")
      .forEach(e => e.remove());
    const p = prefix(name);
    article.querySelectorAll("[id]").forEach(e => { e.id = p + e.id; });
    article.querySelectorAll("[src]").forEach(e => {
      e.setAttribute("src", new URL(e.getAttribute("src"), url).href); });
    article.querySelectorAll("a[href]").forEach(a => {
      const href = a.getAttribute("href");
      const target = new URL(href, url);
      const page = pageOf(target.href);
      if (page === null) return;                        // another site: keep the link
      if (page === undefined) { a.removeAttribute("href"); return; }
      const frag = target.hash ? decodeURIComponent(target.hash.slice(1)) : "top";
      a.setAttribute("href", "#" + prefix(page) + frag);
    });
    const h1 = article.querySelector("h1");
    titles[name] = h1 ? h1.textContent.trim() : name;
    const section = el("section", "book-page");
    section.id = p + "top";
    if (name === pages[0]) {
      // the intro: its title and tagline are the title page's; it reads as the preface
      if (h1) h1.textContent = "About this book";
      titles[name] = "About this book";
      const tagline = article.querySelector("h1 ~ p > em:only-child");
      if (tagline) { meta.subtitle = tagline.textContent; tagline.parentNode.remove(); }
    }
    section.append(...article.childNodes);
    sections.push(section);
  }

  const title = el("section", "book-title");
  title.append(el("h1", "", meta.title));
  if (meta.subtitle) title.append(el("p", "book-subtitle", meta.subtitle));
  title.append(el("p", "book-author", meta.author));
  title.append(el("p", "book-edition", "Edition " + meta.version + " · " + meta.date));
  const repo = el("a", "", meta.repository);
  repo.href = meta.repository;
  const where = el("p", "book-where", "Notebooks, library and the interactive edition: ");
  where.append(repo);
  title.append(where);

  const contents = el("section", "book-contents");
  contents.id = "book-contents";
  contents.append(el("h1", "", "Contents"));
  let chapter = 0;
  for (const [caption, names] of parts) {
    if (caption) contents.append(el("h2", "book-part", caption));
    const list = el("ol", "book-toc");
    for (const name of names) {
      const li = el("li");
      const a = el("a");
      a.href = "#" + prefix(name) + "top";
      const numbered = caption && parts.findIndex(p => p[0] === caption) === 1;
      if (numbered) chapter += 1;
      a.append(el("span", "book-toc-number", numbered ? String(chapter) : ""),
               el("span", "book-toc-title", titles[name]),
               el("span", "book-toc-page", ""));
      a.querySelector(".book-toc-page").dataset.target = prefix(name) + "top";
      li.append(a);
      list.append(li);
    }
    contents.append(list);
  }

  book.append(title, contents, ...sections);
  const container = el("div", "bd-container");
  container.innerHTML = '<div class="bd-container__inner bd-page-width"><main id="main-content" ' +
    'class="bd-main"><div class="bd-content"><div class="bd-article-container"></div></div>' +
    '</main></div>';
  container.querySelector(".bd-article-container").append(book);
  document.body.replaceChildren(container);
  document.title = meta.title;
  document.documentElement.dataset.theme = "light";
  document.documentElement.dataset.mode = "light";

  const widgets = window.curvlibPrintGrids(book);
  if (window.MathJax) {
    await MathJax.startup.promise;
    MathJax.typesetClear();
    await MathJax.typesetPromise([book]);
  }
  await Promise.all(Array.from(document.images).map(img => img.complete ? null :
    new Promise(done => { img.onload = img.onerror = done; })));
  await document.fonts.ready;
  // MathJax 3 does not break lines: a display equation wider than the text is set smaller
  for (const m of book.querySelectorAll("mjx-container[display=true]")) {
    if (m.scrollWidth > m.clientWidth + 1)
      m.style.fontSize = (98 * m.clientWidth / m.scrollWidth).toFixed(1) + "%";
  }
  // the viewport is as wide as the printed text: anything wider would be cut off on paper
  const overflow = Array.from(book.querySelectorAll(
      "pre, table, img, mjx-container[display=true], .cx-print, .cell_output > *"))
    .filter(e => e.scrollWidth > e.clientWidth + 1 || e.getBoundingClientRect().right >
                 book.getBoundingClientRect().right + 1)
    .map(e => e.tagName.toLowerCase() + " in " + (e.closest(".book-page") || book).id + ": " +
              e.scrollWidth + " > " + e.clientWidth + " " +
              (e.getAttribute("aria-label") || e.textContent || e.getAttribute("src") || "").trim().slice(0, 80));
  const broken = Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))
    .map(i => (i.currentSrc || i.src).slice(0, 80));
  return {widgets, overflow, broken};
}
"""

FILL_PAGES_JS = """(pages) => {
  for (const span of document.querySelectorAll('.book-toc-page'))
    span.textContent = pages[span.dataset.target] ?? '';
}"""

# Book-only layout (title page, contents); everything else comes from curvlib.css's print rules.
BOOK_CSS = """
.curvlib-book .book-page, .curvlib-book .book-contents { break-before: page; }
.curvlib-book .book-title { height: 230mm; display: flex; flex-direction: column;
  justify-content: center; text-align: center; }
.curvlib-book .book-title h1 { font-size: 26pt; line-height: 1.2; margin: 0 0 8mm; }
.curvlib-book .book-subtitle { font-size: 13pt; font-style: italic; margin: 0 15mm 14mm; }
.curvlib-book .book-author, .curvlib-book .book-edition { font-size: 12pt; margin: 1mm 0; }
.curvlib-book .book-where { font-size: 9pt; margin-top: 30mm; }
.curvlib-book .book-part { font-size: 12pt; margin: 6mm 0 2mm; }
.curvlib-book ol.book-toc { list-style: none; padding: 0; margin: 0; }
.curvlib-book ol.book-toc a { display: flex; gap: 3mm; padding: 1mm 0; color: inherit; }
.curvlib-book .book-toc-number { width: 7mm; text-align: right; }
.curvlib-book .book-toc-title { flex: 1; border-bottom: 0.2mm dotted #888; }
.curvlib-book .book-toc-page { width: 10mm; text-align: right; }
/* Chromium's PDF bookmarks drop the space where a heading wraps, unless spaces are kept */
.curvlib-book h1, .curvlib-book h2, .curvlib-book h3 { white-space: pre-wrap; }
/* the theme hides each page's first h1 in print (it prints its own title); the book keeps them */
.bd-main .bd-content .curvlib-book h1:first-of-type { display: block; }
.curvlib-book h1 { font-size: 20pt; }
"""


def _serve():
    handler = functools.partial(
        type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
        directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def chapter_pages(pdf_bytes):
    """``{anchor: page number}`` (1-based) for the named destinations of a printed book."""
    from pypdf import PdfReader
    reader = PdfReader(io.BytesIO(pdf_bytes))
    return {name.lstrip("/"): reader.get_destination_page_number(dest) + 1
            for name, dest in reader.named_destinations.items()}


def build(out=OUT):
    from playwright.sync_api import sync_playwright
    if not (SITE / "index.html").is_file():
        sys.exit(f"no site in {SITE}: run `make book` first")
    server = _serve()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            # as wide as the text on an A4 page (210 mm less the margins, at 96 px per inch)
            context = browser.new_context(color_scheme="light",
                                          viewport={"width": TEXT_WIDTH_PX, "height": 1000})
            context.add_init_script("localStorage.setItem('mode', 'light');"
                                    "localStorage.setItem('theme', 'light');")
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.emulate_media(media="print")
            page.goto(base + "index.html", wait_until="load")
            page.add_style_tag(content=BOOK_CSS)
            report = page.evaluate(ASSEMBLE_JS, {"parts": toc_parts(), "meta": book_meta()})
            if report["overflow"] or report["broken"] or errors:
                sys.exit("the book cannot be printed as it is:\n  " + "\n  ".join(
                    [f"wider than the printed text (cut off on paper): {o}"
                     for o in report["overflow"]]
                    + [f"image that did not load: {b}" for b in report["broken"]]
                    + [f"JavaScript error: {e}" for e in errors]))
            pdf_args = dict(format="A4", margin=MARGIN, print_background=True,
                            display_header_footer=True, header_template="<span></span>",
                            footer_template=FOOTER, outline=True, tagged=True)
            first = page.pdf(**pdf_args)
            page.evaluate(FILL_PAGES_JS, chapter_pages(first))
            out.parent.mkdir(parents=True, exist_ok=True)
            page.pdf(path=str(out), **pdf_args)
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return out, report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"default: {OUT}")
    args = parser.parse_args(argv)
    out, report = build(args.out)
    widgets = report["widgets"]
    from pypdf import PdfReader
    n = len(PdfReader(out).pages)
    print(f"{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}: {n} pages, "
          f"{out.stat().st_size / 1e6:.1f} MB, {widgets} widgets printed as grids of frames")


if __name__ == "__main__":
    main()
