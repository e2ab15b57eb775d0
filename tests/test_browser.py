"""A real browser: JupyterLab on 127.0.0.1, headless Chromium, the Figure 4 notebook run in full,
one slider dragged, and the reconstruction must change. The screenshot lands in test-artifacts/."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "08_perturbations.ipynb"
CHROMIUM = os.environ.get("CAPSNET_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
TOKEN = "capsnet-browser-test"
# Chromium on a closed network: no background requests, no sandbox (CI runs as root).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LAB_SETTINGS = {  # render every cell (no virtual scrolling) and never fetch news
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyter_lab(tmp_path):
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CAPSNET_REQUIRE_BROWSER"):
            pytest.fail(f"Chromium is required here but not found at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    # A copy of the notebook, so that JupyterLab's autosave never touches the committed one.
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "images").mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, tmp_path / "notebooks" / NOTEBOOK)
    settings = tmp_path / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"))
    port = free_port()
    log = open(tmp_path / "jupyter.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.root_dir={tmp_path}", f"--IdentityProvider.token={TOKEN}", "--allow-root"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail("jupyter lab did not start:\n" + (tmp_path / "jupyter.log").read_text()[-2000:])
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(tmp_path / "jupyter.log", ARTIFACTS / "jupyter.log")


def run_all_cells(page, attempts=3):
    """Run > Run All Cells, once the kernel is idle; again if no cell started (a click that lands
    while the kernel's session is still connecting does nothing)."""
    page.locator(".jp-StatusBar-TextItem", has_text="Idle").first.wait_for(timeout=60_000)
    first_prompt = page.locator(".jp-CodeCell .jp-InputPrompt").first
    for _ in range(attempts):
        page.locator(".lm-MenuBar-itemLabel").get_by_text("Run", exact=True).click()
        page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
        deadline = time.time() + 20
        while time.time() < deadline:
            if first_prompt.inner_text().strip() not in ("", "[ ]:"):
                return
            time.sleep(0.5)
    pytest.fail("Run All Cells did not start the notebook's cells")


def test_dragging_a_slider_redraws_the_reconstruction_in_a_real_browser(jupyter_lab):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{jupyter_lab}/lab/tree/notebooks/{NOTEBOOK}?token={TOKEN}")
            page.locator(".jp-Notebook").wait_for(timeout=60_000)
            run_all_cells(page)

            sliders = page.locator(".widget-slider", has_text="dim 3")
            sliders.first.wait_for(timeout=60_000)
            reconstruction = page.locator(".widget-image").nth(1)
            reconstruction.wait_for(timeout=60_000)
            before = reconstruction.get_attribute("src")

            handle = sliders.first.locator(".noUi-handle")
            handle.scroll_into_view_if_needed()
            box = handle.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] / 2 + 60, box["y"] + box["height"] / 2, steps=8)
            page.mouse.up()

            deadline = time.time() + 30
            while reconstruction.get_attribute("src") == before and time.time() < deadline:
                time.sleep(0.2)
            after = reconstruction.get_attribute("src")
            readout = sliders.first.locator(".widget-readout").inner_text()
            page.locator(".widget-vbox").first.scroll_into_view_if_needed()
        finally:
            page.screenshot(path=str(ARTIFACTS / "browser_figure4_panel.png"))
            browser.close()
    assert readout.strip() not in ("+0.00", "0.00"), f"the slider did not move (readout {readout!r})"
    assert after != before, "the reconstruction image did not change after the slider moved"
