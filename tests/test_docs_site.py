"""The documentation site builds offline in strict mode (what `make docs` runs) and its index opens in Chromium."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PACKAGES = ["attr", "metrics", "viz", "insights", "robust", "concept", "influence", "module", "scale"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONWARNINGS": "ignore::DeprecationWarning",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{log[-4000:]}"
    assert "WARNING" not in log, log
    return out


def test_site_builds_strict_with_api_reference_and_tutorials(site):
    for package in PACKAGES:
        page = (site / "api" / f"{package}.html").read_text()
        assert f"intellego.{package}" in page
    attr = (site / "api" / "attr.html").read_text()
    # the shared argument texts are filled in, and examples are rendered as code
    assert "Which output to explain" in attr and "{TARGET}" not in attr and "{INPUTS}" not in attr
    assert 'id="intellego.attr.IntegratedGradients.attribute"' in attr
    for page in ("tutorials/attribution.html", "tutorials/insights.html", "tutorials/text.html",
                 "tutorials/metrics.html", "tutorials/scale.html", "porting.html", "benchmarks.html",
                 "architecture.html"):
        assert (site / page).exists(), page
    tutorial = re.sub(r"<[^>]+>", "", (site / "tutorials" / "attribution.html").read_text())
    assert "ig = IntegratedGradients(model)" in tutorial  # the tutorial's code, included from the script
    assert (site / "img" / "worked_methods.png").exists() and (site / "img" / "insights_export.html").exists()
    for html in site.rglob("*.html"):  # offline: nothing fetched from another host when a page opens
        text = html.read_text()
        assert "fonts.googleapis" not in text and "<script src=\"http" not in text, html


@pytest.mark.browser
def test_site_index_opens_in_chromium(site):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            requests: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto((site / "index.html").as_uri())
            assert page.title().startswith("intellego")
            images = page.eval_on_selector_all("article img", "els => els.map(e => [e.naturalWidth, e.src])")
            assert len(images) == 2 and all(width > 100 for width, _ in images), images
            page.click("article a[href='api/attr.html']")  # the index's link to the API reference
            page.wait_for_url("**/api/attr.html")
            assert page.locator("h2#intellego\\.attr\\.IntegratedGradients").count() == 1
            assert not errors, errors
            assert all(url.startswith("file://") or url.startswith("data:") for url in requests), requests
        finally:
            browser.close()
