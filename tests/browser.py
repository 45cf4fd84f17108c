"""A real browser for the tests: Debian's Chromium driven by its own chromedriver (Selenium).

    with chromium() as driver:              # desktop, 1280x900 viewport
        driver.get(url)
        wait_css(driver, "img.evidence")
    with chromium(*PHONE) as driver: ...    # 390x844 phone: mobile user agent, touch, DPR 3

or, in a test module, `phone = browser_fixture(*PHONE)` and take `phone` as a test argument.

The browser reaches loopback only: names resolve nowhere but 127.0.0.1 and localhost, every other
connection goes to a dead proxy, and Chromium's own background traffic (component updates,
phishing checks, metrics) is switched off. Selenium Manager (which downloads drivers) is never
run: the driver path is explicit. Without /usr/bin/chromium or /usr/bin/chromedriver (.ci/run
installs both with apt-get) the tests that ask for a browser are skipped, reason given.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.wait import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

DESKTOP = (1280, 900)
PHONE = (390, 844)  # an iPhone 12-15 / Pixel-class phone, in CSS pixels
# Viewports at most this wide are phones unless `mobile=` says otherwise.
PHONE_MAX_WIDTH = 480
PHONE_USER_AGENT = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36"
)

# Chromium switches: headless, fit for containers, and silent on the network.
_ARGS = [
    "--headless=new",
    "--no-sandbox",  # CI runs as root in a container
    "--disable-dev-shm-usage",  # small /dev/shm in containers: use /tmp
    "--disable-gpu",
    # Loopback only, twice over (each alone blocks names and IP literals, checked by
    # tests/test_browser.py): the resolver rules fail every host but loopback, and every
    # connection goes to a proxy port where nothing listens; Chromium never proxies loopback.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
    "--proxy-server=http://127.0.0.1:9",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-client-side-phishing-detection",
    "--disable-domain-reliability",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-pings",
    "--metrics-recording-only",
    "--disable-features=Translate,OptimizationHints,MediaRouter,InterestFeedContentSuggestions",
    "--lang=zh-CN",  # the console is Chinese first
]


def missing() -> str | None:
    """Why no browser can run here, or None when Chromium and its driver are installed."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.is_file():
            return f"{path} is missing (.ci/run installs Debian's chromium and chromium-driver)"
    return None


def require_chromium() -> None:
    """Skip the calling test, with the reason, when Chromium or chromedriver is not installed."""
    reason = missing()
    if reason is not None:
        pytest.skip(reason)


def options(
    width: int = DESKTOP[0], height: int = DESKTOP[1], mobile: bool | None = None
) -> webdriver.ChromeOptions:
    """Chrome options for a viewport of width x height CSS pixels (window.innerWidth/Height).

    A phone (mobile=True, or a width <= PHONE_MAX_WIDTH when mobile is None) gets a mobile user
    agent, touch events and a device pixel ratio of 3; a desktop gets ratio 1 and no touch.
    """
    if mobile is None:
        mobile = width <= PHONE_MAX_WIDTH
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in [*_ARGS, f"--window-size={width},{height}"]:
        opts.add_argument(arg)
    # chromedriver's device emulation pins the viewport exactly: a headless window alone keeps
    # some of its height for the (invisible) browser frame.
    emulation: dict[str, Any] = {
        "deviceMetrics": {
            "width": width,
            "height": height,
            "pixelRatio": 3.0 if mobile else 1.0,
            "mobile": mobile,
            "touch": mobile,
        }
    }
    if mobile:
        emulation["userAgent"] = PHONE_USER_AGENT
    opts.add_experimental_option("mobileEmulation", emulation)
    return opts


@contextmanager
def chromium(
    width: int = DESKTOP[0], height: int = DESKTOP[1], mobile: bool | None = None
) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a width x height viewport, quit on exit (see `options`)."""
    require_chromium()
    # An explicit driver path: Selenium never runs Selenium Manager to look for one.
    service = Service(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(service=service, options=options(width, height, mobile))
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()


def browser_fixture(
    width: int = DESKTOP[0],
    height: int = DESKTOP[1],
    mobile: bool | None = None,
    scope: Literal["function", "module", "session"] = "function",
) -> object:
    """A pytest fixture giving a browser; assign it to a name in a test module or a conftest:

        desktop = browser_fixture()
        phone = browser_fixture(*PHONE, scope="module")

    then take `desktop` or `phone` as a test argument. A browser takes about a second to start:
    with a wider scope the tests share one, so call `reset(driver)` first where one test's
    cookies (its login) must not reach the next.
    """

    def fixture() -> Iterator[webdriver.Chrome]:
        with chromium(width, height, mobile) as driver:
            yield driver

    return pytest.fixture(fixture, scope=scope)


def reset(driver: webdriver.Chrome) -> None:
    """Forget the last test's page and cookies (a shared browser between tests)."""
    driver.get("about:blank")
    # WebDriver's delete_all_cookies() covers the current page's site only: clear them all.
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})


def wait_css(driver: webdriver.Chrome, selector: str, timeout: float = 10) -> WebElement:
    """The first element matching the CSS `selector` once it is visible; TimeoutException if it
    is not within `timeout` seconds."""
    element: WebElement = WebDriverWait(driver, timeout).until(
        ec.visibility_of_element_located(("css selector", selector)),
        message=f"no visible element matches {selector!r} after {timeout} s",
    )
    return element


def image_loaded(driver: webdriver.Chrome, element: WebElement) -> bool:
    """True when the <img> has really loaded and decoded (complete, naturalWidth > 0): a broken
    or blocked image is complete too, but with naturalWidth 0."""
    return bool(
        driver.execute_script(
            "const img = arguments[0]; return img.complete && img.naturalWidth > 0;", element
        )
    )


def screenshot(driver: webdriver.Chrome, path: Path | str, full_page: bool = False) -> Path:
    """Write a PNG of the viewport (or of the whole page) to `path`, folders created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if full_page:
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        path.write_bytes(base64.b64decode(shot["data"]))
    elif not driver.save_screenshot(str(path)):
        raise OSError(f"the browser could not write a screenshot to {path}")
    return path
