"""Build the tutorial's website: `python docs/build_site.py` -> build/site/index.html.

Stages docs/ (configuration, pages, the Figure 4 page's files), the README, the notebooks as stored
and images/ into build/site-src, with MathJax, its font and the widget manager from pinned npm
packages (VENDORED; needs npm and the npm registry the first time, then build/npm-packages caches
them), runs Sphinx (myst-nb, no execution) into build/site, then checks that every internal link
and image of the built pages exists and that no page loads anything from another site.
Needs `pip install -e ".[site]"`.
Serve the result with `python -m http.server -d build/site` (the Figure 4 page fetches its files,
which browsers refuse on file:// pages).
"""
import argparse
import base64
import fnmatch
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]


# What a page loads besides its own files, served from the site itself: taken at build time from the
# npm registry by name and version, checked against the registry's sha512, and copied into
# _static/vendor/FOLDER. package: (integrity, FOLDER, the package's files a page loads, as globs).
VENDORED = {
    "mathjax@4.1.3": ("sha512-BN/8Pkgn7G1pIDYJqd9md+JHsE/jydSYbyOZnSdSA0WziuVO8mRxdYiWFumkVVly/8U+hm9DpIIoWuvySverzw==",
                      "mathjax", ["tex-mml-chtml.js", "a11y/*", "ui/*", "input/*", "output/*", "adaptors/*",
                                  "sre/speech-worker.js", "sre/mathmaps/base.json", "sre/mathmaps/en.json",
                                  "sre/mathmaps/nemeth.json", "LICENSE"]),
    "@mathjax/mathjax-newcm-font@4.1.3": (
        "sha512-gzAB3dFHilHX1l5x2xUqRL+1jDQt3Fyza1DkEMVXWC4E8SvsGdlgEza47HYi2WhVcgfkvf4zgUGzuhbq3Pjlew==",
        "mathjax-fonts/mathjax-newcm-font", ["chtml.js", "chtml/*", "LICENSE"]),
    # html-manager's webpack bundle finds its icon fonts at <data-jupyter-widgets-cdn>@jupyter-widgets/html-manager/dist/
    "@jupyter-widgets/html-manager@1.0.6": (
        "sha512-+Mn+Ra8wyIHrYaUpfmf9A3dsLkt/NuwzPQN8sthdxBD35VV5cOJbpmgMhNR27n/rmP3mKyEe0PWCJrtZrXTXDQ==",
        "@jupyter-widgets/html-manager", ["dist/embed-amd.js", "dist/*.woff2", "dist/*.woff", "LICENSE"]),
    "requirejs@2.3.4": ("sha512-qPD5gRrj6kGQ0ZySAJgqbArkaDqPMbQIT0zSZDkIv1mfA17w/tR2Faq5l2qqRf2CdQx6FWln9nUrgd2UDzb19A==",
                        "requirejs", ["require.js", "README.md"]),
}
NPM_CACHE = ROOT / "build" / "npm-packages"


def npm_package(spec, integrity):
    """The registry's tarball of `spec` (cached in build/npm-packages), checked against `integrity`."""
    NPM_CACHE.mkdir(parents=True, exist_ok=True)
    tarball = NPM_CACHE / (spec.lstrip("@").replace("/", "-").replace("@", "-") + ".tgz")
    if not tarball.is_file() or _sha512(tarball) != integrity:
        with tempfile.TemporaryDirectory(dir=NPM_CACHE) as folder:
            try:
                result = subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", folder],
                                        capture_output=True, text=True, timeout=300)
            except (OSError, subprocess.TimeoutExpired) as error:
                raise RuntimeError(f"could not fetch {spec} with npm ({error}); the site serves it itself, "
                                   "so the build needs npm and the npm registry once") from None
            packed = list(Path(folder).glob("*.tgz"))
            if result.returncode != 0 or len(packed) != 1:
                raise RuntimeError(f"npm pack {spec} failed: {result.stderr.strip()[-500:]}")
            os.replace(packed[0], tarball)
    if _sha512(tarball) != integrity:
        raise RuntimeError(f"{tarball} does not match the pinned sha512 of {spec}")
    return tarball


def _sha512(path):
    return "sha512-" + base64.b64encode(hashlib.sha512(Path(path).read_bytes()).digest()).decode()


def vendor(static):
    """Copy each pinned package's files that a page loads into static/vendor."""
    for spec, (integrity, folder, globs) in VENDORED.items():
        with tarfile.open(npm_package(spec, integrity)) as tar:
            for member in tar.getmembers():
                name = member.name.split("/", 1)[1]          # npm tarballs hold package/...
                if member.isfile() and any(fnmatch.fnmatch(name, pattern) for pattern in globs):
                    destination = static / "vendor" / folder / name
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    destination.write_bytes(tar.extractfile(member).read())


def stage(source):
    """Copy what the site is built from into `source` (a fresh folder)."""
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(ROOT / "docs", source, ignore=shutil.ignore_patterns("build_site.py", "__pycache__"))
    vendor(source / "_static")
    shutil.copy(ROOT / "README.md", source / "README.md")
    shutil.copytree(ROOT / "images", source / "images")
    (source / "notebooks").mkdir()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copy(notebook, source / "notebooks" / notebook.name)
    shutil.copytree(ROOT / "notebooks" / "solutions", source / "notebooks" / "solutions")   # the exercises link them


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
    place_widget_fonts(out)
    return out


def place_widget_fonts(site):
    """The widget manager's icon fonts where its injected CSS looks for them: beside the pages that
    show widgets (all in notebooks/), at @jupyter-widgets/ and @jupyter-widgets/html-manager/dist/."""
    fonts = sorted((site / "_static" / "vendor" / "@jupyter-widgets" / "html-manager" / "dist").glob("*.woff*"))
    for folder in ("@jupyter-widgets", "@jupyter-widgets/html-manager/dist"):
        (site / "notebooks" / folder).mkdir(parents=True, exist_ok=True)
        for font in fonts:
            shutil.copy(font, site / "notebooks" / folder / font.name)


class _Tags(HTMLParser):
    """Every start tag of a page, as (tag, {attribute: value})."""

    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(page):
    parser = _Tags()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.tags


LOADED_BY_SRC = ("script", "img", "iframe", "source", "audio", "video")
NOT_LOADED_LINKS = ("canonical", "next", "prev", "index", "search", "author", "license")


def outside_assets(site):
    """[(page, url)] for every script, stylesheet, image or font a built page would fetch from another
    site: the site must read right with no network."""
    found = []
    for page in sorted(Path(site).rglob("*.html")):
        tags = _tags(page)
        loaded = [attrs["src"] for tag, attrs in tags if tag in LOADED_BY_SRC and attrs.get("src")] + \
                 [attrs["href"] for tag, attrs in tags
                  if tag == "link" and attrs.get("href") and attrs.get("rel") not in NOT_LOADED_LINKS]
        found += [(str(page.relative_to(site)), url) for url in loaded
                  if urlsplit(url).scheme in ("http", "https") or url.startswith("//")]
    return found


def broken_links(site):
    """[(page, target)] for every relative href or src of the built pages that names no file."""
    site, broken = Path(site), []
    for page in sorted(site.rglob("*.html")):
        for target in [attrs[name] for _, attrs in _tags(page) for name in ("href", "src") if attrs.get(name)]:
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
    broken, outside = broken_links(site), outside_assets(site)
    for page, target in broken:
        print(f"broken link in {page}: {target}", file=sys.stderr)
    for page, url in outside:
        print(f"{page} would load {url} from another site; serve it from _static/vendor (VENDORED)", file=sys.stderr)
    if broken or outside:
        return 1
    print(f"site built in {site} ({len(list(site.rglob('*.html')))} pages, no broken internal links); "
          f"serve it with: python -m http.server -d {site}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
