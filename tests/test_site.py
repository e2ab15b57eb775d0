"""The website: the Figure 4 page's exported files, its JavaScript decoder against PyTorch's, the
site build with no broken internal link, and the page itself in a real browser."""
import base64
import json
import os
import shutil
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from capsnet_lib import load_mnist, load_pretrained
from capsnet_lib.figures.web_export import export

ROOT = Path(__file__).resolve().parents[1]
FIGURE4 = ROOT / "docs" / "_static" / "figure4"
CHROMIUM = os.environ.get("CAPSNET_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
PIXEL_TOLERANCE = 1e-4      # JavaScript vs PyTorch decoder, per pixel intensity in [0, 1]
sys.path.insert(0, str(ROOT / "docs"))
from build_site import broken_links, build, outside_assets  # noqa: E402


def required(tool, where):
    """Skip without `tool`, unless the run demands the browser tests (CI sets CAPSNET_REQUIRE_BROWSER)."""
    if shutil.which(where) is None and not Path(where).is_file():
        if os.environ.get("CAPSNET_REQUIRE_BROWSER"):
            pytest.fail(f"{tool} is required here but not found ({where})")
        pytest.skip(f"no {tool} ({where})")


def exported_digits(folder=FIGURE4):
    """digits.json with pixels (N, 28, 28) uint8 and capsules (N, 10, 16) float32 decoded."""
    data = json.loads((folder / "digits.json").read_text())
    read = lambda text, dtype: np.frombuffer(base64.b64decode(text), dtype=dtype)
    return {"labels": [d["label"] for d in data["digits"]], "predictions": [d["prediction"] for d in data["digits"]],
            "pixels": torch.tensor(np.stack([read(d["pixels"], np.uint8) for d in data["digits"]])).view(-1, 28, 28),
            "capsules": torch.tensor(np.stack([read(d["capsules"], "<f2").astype(np.float32)
                                               for d in data["digits"]])).view(-1, 10, 16)}


@torch.no_grad()
def torch_decode(capsules, label):
    """PyTorch's decoder of the shipped model on one (10, 16) capsule set: (784,)."""
    return load_pretrained().decode(capsules[None], torch.tensor([label]))[0, 0].flatten()


def test_the_committed_files_are_what_the_export_command_makes(tmp_path, mnist_root):
    images, labels = load_mnist("test", mnist_root, download=False)
    export(load_pretrained(), images[:100], labels[:100], tmp_path)
    for name in ("decoder.bin", "decoder.json"):
        assert (tmp_path / name).read_bytes() == (FIGURE4 / name).read_bytes(), f"{name} is stale: re-export"
    ours, fresh = exported_digits(FIGURE4), exported_digits(tmp_path)
    assert ours["labels"] == fresh["labels"] and ours["predictions"] == fresh["predictions"]
    assert torch.equal(ours["pixels"], fresh["pixels"])
    # float16 capsules from a float32 forward pass: another CPU may round a last bit differently
    assert torch.allclose(ours["capsules"], fresh["capsules"], atol=2e-3)
    assert (FIGURE4 / "decoder.bin").stat().st_size == 2 * sum(p.numel() for p in load_pretrained().decoder.parameters())


def test_the_pages_decoder_matches_pytorchs_on_perturbed_capsules():
    required("Node.js", "node")
    digits = exported_digits()
    generator = torch.Generator().manual_seed(0)
    cases, expected = [], []
    for index in (0, 1, 7, 42, 99):
        label = digits["predictions"][index]
        for _ in range(3):
            capsules = digits["capsules"][index].clone()
            capsules[label] += (torch.rand(16, generator=generator) - 0.5) * 0.5      # offsets in +-0.25
            cases.append({"capsules": capsules.flatten().tolist(), "label": label})
            expected.append(torch_decode(capsules, label))
    result = subprocess.run(["node", str(ROOT / "tests" / "js" / "decode_cli.mjs"), str(FIGURE4)],
                            input=json.dumps({"cases": cases}), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    decoded = json.loads(result.stdout)
    gap = (torch.tensor(decoded["images"]) - torch.stack(expected)).abs().max().item()
    print(f"JavaScript vs PyTorch decoder: max |pixel gap| {gap:.2e} over {len(cases)} decodes; "
          f"{decoded['milliseconds_per_decode']:.2f} ms per decode under Node")
    assert gap <= PIXEL_TOLERANCE


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build(tmp_path_factory.mktemp("site") / "site")


def test_the_site_has_every_notebook_and_the_figure4_page_and_no_broken_link(site):
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        page = site / "notebooks" / (notebook.stem + ".html")
        assert page.is_file(), f"no page for {notebook.name}"
        assert "<img" in page.read_text() or notebook.stem == "01_squash", f"{page.name} shows no figure"
    assert (site / "figure4.html").is_file() and (site / "_static" / "figure4" / "decoder.bin").is_file()
    assert broken_links(site) == []


def test_no_page_loads_anything_from_another_site(site):
    assert outside_assets(site) == []


def test_the_outside_asset_check_finds_a_cdn_script_and_stylesheet_but_not_links(tmp_path):
    (tmp_path / "page.html").write_text(
        '<script src="https://cdn.example.org/mathjax.js"></script><link rel="stylesheet" href="//fonts.example.org/f.css">'
        '<a href="https://arxiv.org/abs/1710.09829">paper</a><script src="_static/local.js"></script>')
    assert outside_assets(tmp_path) == [("page.html", "https://cdn.example.org/mathjax.js"),
                                        ("page.html", "//fonts.example.org/f.css")]


def test_the_link_check_finds_a_missing_page_and_a_missing_image(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "other.html").write_text("<p>here</p>")
    (tmp_path / "sub" / "page.html").write_text(
        '<a href="../other.html#top">ok</a> <a href="https://example.org/x">external</a> <a href="#local">anchor</a>'
        '<a href="../missing.html">gone</a> <img src="figure.png">')
    assert broken_links(tmp_path) == [("sub/page.html", "../missing.html"), ("sub/page.html", "figure.png")]


@pytest.fixture
def served(site):
    handler = partial(SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def canvas_pixels(page, selector):
    """The red channel of a 28x28 canvas as intensities in [0, 1]: (784,)."""
    data = page.evaluate(f"""() => Array.from(document.querySelector('{selector}').getContext('2d')
                              .getImageData(0, 0, 28, 28).data.filter((_, k) => k % 4 === 0))""")
    return torch.tensor(data, dtype=torch.float32) / 255


def test_the_figure4_page_decodes_in_the_browser_with_no_kernel_and_no_network(served):
    required("Chromium", CHROMIUM)
    from playwright.sync_api import sync_playwright
    digits = exported_digits()
    # the canvas holds whole gray levels: half a level of rounding, plus the float32 gap
    tolerance = 0.5 / 255 + PIXEL_TOLERANCE
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1300})
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(served)
                       else route.abort())                                      # no network beyond the site
            page.goto(f"{served}/figure4.html")
            page.wait_for_function("window.figure4 && (window.figure4.ready || window.figure4.error)", timeout=60_000)
            assert page.evaluate("window.figure4.error || null") is None
            assert "Figure 4" in page.title() and page.locator("a[href$='08_perturbations.html']").count() >= 1
            label = digits["predictions"][0]
            original = canvas_pixels(page, "#fig4-reconstruction")
            assert (original - torch_decode(digits["capsules"][0], label)).abs().max() <= tolerance

            slider = page.locator("#fig4-dim-3")                         # drag it, as a reader would
            box = slider.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.85, box["y"] + box["height"] / 2, steps=8)
            page.mouse.up()
            value = float(slider.input_value())
            assert 0.1 <= value <= 0.25, f"the drag left slider 3 at {value}"
            moved = canvas_pixels(page, "#fig4-reconstruction")
            perturbed = digits["capsules"][0].clone()
            perturbed[label, 3] += value
            assert (moved - original).abs().sum() > 1.0, "dragging slider 3 did not change the image"
            assert (moved - torch_decode(perturbed, label)).abs().max() <= tolerance
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "figure4_page.png"), full_page=True)

            page.click("#fig4-reset")
            assert float(slider.input_value()) == 0.0
            assert (canvas_pixels(page, "#fig4-reconstruction") - original).abs().max() == 0

            page.click(".fig4-thumb[data-index='5']")
            assert "test digit 5" in page.locator("#fig4-caption").text_content()
            other = canvas_pixels(page, "#fig4-reconstruction")
            assert (other - torch_decode(digits["capsules"][5], digits["predictions"][5])).abs().max() <= tolerance
            assert (canvas_pixels(page, "#fig4-input") * 255 - digits["pixels"][5].flatten().float()).abs().max() == 0
            for k in range(30):                                          # time decodes in this browser
                slider.fill(f"{-0.25 + k * 0.015:.3f}")
            print(page.locator("#fig4-timing").text_content())
        finally:
            browser.close()


def test_the_figure4_page_opened_as_a_file_says_how_to_open_it(site):
    """Double-clicked (file://), the page cannot load its module script or files; it must say so at
    once, not stay at 'Loading the decoder'."""
    required("Chromium", CHROMIUM)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page()
            page.goto((site / "figure4.html").as_uri())
            page.wait_for_function("window.figure4 && window.figure4.error", timeout=10_000)
            text = page.locator("#figure4").text_content()
            assert "Loading the decoder" not in text
            assert "file://" in text and "python -m http.server -d build/site" in text
        finally:
            browser.close()


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"])


def test_every_page_typesets_its_math_and_draws_its_widgets_with_no_network(served, site):
    required("Chromium", CHROMIUM)
    from playwright.sync_api import sync_playwright
    pages = sorted(str(p.relative_to(site)) for p in site.rglob("*.html")
                   if not str(p.relative_to(site)).startswith(("_", "search", "genindex")))
    outside, failed, math = [], [], {}
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1400})
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(served)
                       else (outside.append(route.request.url), route.abort()))
            page.on("response", lambda response: response.status >= 400 and failed.append(response.url))
            for name in pages:
                page.goto(f"{served}/{name}")
                page.wait_for_load_state("networkidle")
                page.evaluate("async () => { if (window.MathJax && MathJax.startup) await MathJax.startup.promise; }")
                text = page.evaluate("document.body.innerText")
                raw = [tex for tex in ("\\begin", "\\hat", "\\mathbf", "\\frac") if tex in text]
                assert not raw, f"{name} shows raw TeX {raw}: MathJax did not typeset it"
                math[name] = page.locator("mjx-container").count()
                if name == "notebooks/03_dynamic_routing.html":
                    ARTIFACTS.mkdir(exist_ok=True)
                    page.screenshot(path=str(ARTIFACTS / "03_dynamic_routing_offline.png"))
                if name == "notebooks/08_perturbations.html":
                    assert page.locator(".jupyter-widgets").count() > 0, "the stored slider panel was not drawn"
        finally:
            browser.close()
    assert outside == [], f"pages asked another site for {outside}"
    assert failed == [], f"pages asked for files the site does not have: {failed}"
    assert math["notebooks/03_dynamic_routing.html"] >= 20 and math["notebooks/01_squash.html"] >= 10, math
