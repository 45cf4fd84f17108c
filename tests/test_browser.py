"""tests/browser.py itself: Debian's Chromium loads a page from loopback at desktop and phone
sizes, shows its image, runs its script, and reaches nothing beyond loopback."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.selenium_manager import SeleniumManager
from selenium.webdriver.support.wait import WebDriverWait

from tests.browser import PHONE, browser_fixture, image_loaded, screenshot, wait_css

PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>浏览器自检</title>
</head>
<body>
  <img id="photo" src="photo.png" alt="证据图" width="160" height="120">
  <img id="missing" src="missing.png" alt="不存在">
  <img id="outside" src="http://example.com/logo.png" alt="外网">
  <button id="confirm" type="button">确认</button>
  <p id="state">待处理</p>
  <script>
    document.getElementById("confirm").addEventListener("click", () => {
      document.getElementById("state").textContent = "已确认";
    });
  </script>
</body>
</html>
"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # keep pytest's output clean
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The page above and a real PNG, served by http.server on a free loopback port."""
    root = tmp_path_factory.mktemp("site")
    (root / "index.html").write_text(PAGE, encoding="utf-8")
    Image.new("RGB", (160, 120), (40, 120, 60)).save(root / "photo.png")
    handler = functools.partial(_QuietHandler, directory=str(root))
    # Port 0: the kernel picks a free port at bind time (no window for another process).
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module", autouse=True)
def no_selenium_manager() -> Iterator[None]:
    """Selenium Manager (which would look for, or download, a driver) must never run: fail if
    anything asks it. Autouse, so it is in place before the module's browsers start."""

    def refuse(self: SeleniumManager, args: list[str]) -> dict[str, str]:
        raise AssertionError(f"Selenium Manager was invoked with {args}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SeleniumManager, "binary_paths", refuse)
        yield


desktop = browser_fixture(scope="module")
phone = browser_fixture(*PHONE, scope="module")


def _check_page(driver: webdriver.Chrome, url: str, shot: Path) -> None:
    """The image loads, a broken one is told apart, the button's script runs."""
    driver.get(url)
    photo = wait_css(driver, "#photo")
    WebDriverWait(driver, 10).until(lambda d: image_loaded(d, photo), "photo.png never loaded")
    assert driver.execute_script("return arguments[0].naturalWidth", photo) == 160
    missing = driver.find_element("css selector", "#missing")
    WebDriverWait(driver, 10).until(
        lambda d: d.execute_script("return arguments[0].complete", missing)
    )
    assert not image_loaded(driver, missing), "a 404 image must not count as loaded"

    assert wait_css(driver, "#state").text == "待处理"
    wait_css(driver, "#confirm").click()
    WebDriverWait(driver, 5).until(
        lambda d: d.find_element("css selector", "#state").text == "已确认"
    )

    assert screenshot(driver, shot).stat().st_size > 0


def test_desktop_viewport_image_and_script(
    desktop: webdriver.Chrome, site: str, tmp_path: Path
) -> None:
    _check_page(desktop, site, tmp_path / "desktop.png")
    assert desktop.execute_script("return [innerWidth, innerHeight]") == [1280, 900]
    assert "Mobile" not in desktop.execute_script("return navigator.userAgent")
    with Image.open(tmp_path / "desktop.png") as png:
        assert png.size == (1280, 900)


def test_phone_viewport_image_and_script(
    phone: webdriver.Chrome, site: str, tmp_path: Path
) -> None:
    _check_page(phone, site, tmp_path / "phone.png")
    assert phone.execute_script("return window.innerWidth") == 390
    assert phone.execute_script("return window.innerHeight") == 844
    assert "Mobile" in phone.execute_script("return navigator.userAgent")
    assert phone.execute_script("return matchMedia('(pointer: coarse)').matches") is True
    # A full-page shot at the phone's device pixel ratio (3).
    with Image.open(screenshot(phone, tmp_path / "phone-full.png", full_page=True)) as png:
        assert png.width == 390 * 3


def test_nothing_beyond_loopback(desktop: webdriver.Chrome, site: str) -> None:
    """Names and addresses outside loopback both fail, fast, while loopback works."""
    desktop.get(site)
    outside = desktop.find_element("css selector", "#outside")
    WebDriverWait(desktop, 10).until(
        lambda d: d.execute_script("return arguments[0].complete", outside)
    )
    assert not image_loaded(desktop, outside)
    fetch = """
        const done = arguments[arguments.length - 1];
        fetch(arguments[0], {mode: "no-cors"}).then(() => done("reached"), () => done("blocked"));
    """
    desktop.set_script_timeout(10)
    assert desktop.execute_async_script(fetch, "http://example.com/") == "blocked"
    assert desktop.execute_async_script(fetch, "http://1.1.1.1/") == "blocked"
    assert desktop.execute_async_script(fetch, site) == "reached"
    assert desktop.execute_async_script(fetch, site.replace("127.0.0.1", "localhost")) == "reached"
