"""Build the tutorial's website: `python docs/build_site.py` -> build/site/index.html.

Stages docs/ (configuration, pages, the Figure 4 page's files), the README, the notebooks as stored
and images/ into build/site-src, runs Sphinx (myst-nb, no execution) into build/site, then checks
that every internal link and image of the built pages exists. Needs `pip install -e ".[site]"`.
Serve the result with `python -m http.server -d build/site` (the Figure 4 page fetches its files,
which browsers refuse on file:// pages).
"""
import argparse
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]


def stage(source):
    """Copy what the site is built from into `source` (a fresh folder)."""
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(ROOT / "docs", source, ignore=shutil.ignore_patterns("build_site.py", "__pycache__"))
    shutil.copy(ROOT / "README.md", source / "README.md")
    shutil.copytree(ROOT / "images", source / "images")
    (source / "notebooks").mkdir()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copy(notebook, source / "notebooks" / notebook.name)


def build(out, source=None):
    """Stage and build; returns the site folder. Raises RuntimeError if Sphinx fails or warns."""
    from sphinx.cmd.build import build_main

    out = Path(out)
    source = Path(source or out.parent / (out.name + "-src"))
    stage(source)
    shutil.rmtree(out, ignore_errors=True)
    status = build_main(["-b", "html", "-W", "--keep-going", "-q", "-d", str(out.parent / (out.name + "-doctrees")),
                         str(source), str(out)])
    if status != 0:
        raise RuntimeError(f"sphinx-build failed with status {status} (warnings are errors; see above)")
    return out


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.targets = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.targets.append(value)


def broken_links(site):
    """[(page, target)] for every relative href or src of the built pages that names no file."""
    site, broken = Path(site), []
    for page in sorted(site.rglob("*.html")):
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for target in parser.targets:
            parts = urlsplit(target)
            if parts.scheme or parts.netloc or target.startswith(("#", "mailto:", "data:", "javascript:")):
                continue
            path = unquote(parts.path)
            resolved = (site / path.lstrip("/")) if path.startswith("/") else (page.parent / path)
            if not path or resolved.is_dir() and (resolved / "index.html").exists():
                continue
            if not resolved.exists():
                broken.append((str(page.relative_to(site)), target))
    return broken


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "build" / "site"))
    args = parser.parse_args(argv)
    try:
        site = build(args.out)
    except (RuntimeError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    broken = broken_links(site)
    for page, target in broken:
        print(f"broken link in {page}: {target}", file=sys.stderr)
    if broken:
        return 1
    print(f"site built in {site} ({len(list(site.rglob('*.html')))} pages, no broken internal links); "
          f"serve it with: python -m http.server -d {site}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
