"""The gallery in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by
selenium): a real job through the local runtime (legacy GET: image, Arweave item, moment on the
embedded default), then its public page and the account's gallery. The pages load, every image
renders, the verdict reads ok link by link, a hostile prompt is text (no alert, no injected element),
the page's own hashed style and script pass its Content-Security-Policy (no violation in the console),
and the key never appears in a URL. Screenshots are kept under ``$IMAGEMINT_ARTIFACTS`` (or this
test's tmp dir) as ``gallery-moment.png`` and ``gallery-account.png``.

Without Chromium this FAILS (``.ci/run`` installs it): it is the only test of the page in a browser.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from imagemint_dev.local.runtime import start

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1400",
)
HOSTILE = '<img src=x onerror=alert(1)> a koi & "friends" </h2><script>alert(2)</script>'
WAIT_S = 60  # an upper bound for the page to settle, not a measurement


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    where = os.environ.get("IMAGEMINT_ARTIFACTS")
    path = Path(where) if where else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: the gallery is tested in Debian's Chromium. Run .ci/run "
            "(it installs them) or: apt-get update && apt-get install -y chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    rt = start(root=ROOT, state_dir=tmp_path_factory.mktemp("gallery"), port=0)
    yield rt
    rt.stop()


@pytest.fixture(scope="module")
def jobs(runtime) -> list[str]:
    """Two real legacy jobs (archived and minted): a plain prompt, then a hostile one."""
    out = []
    for prompt in ("a koi in neon", HOSTILE):
        q = urllib.parse.urlencode({"prompt": prompt, "account_id": runtime.account["account_id"]})
        with urllib.request.urlopen(f"{runtime.base_url}/api/image/generate?{q}", timeout=120) as r:
            body = json.loads(r.read())
        assert body["moment"]["tokenId"] and body["arweaveResult"]["id"]
        out.append(body["jobId"])
    return out


def _settled(driver, css: str) -> None:
    """Wait until ``css`` matches and every image has loaded (or failed)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT_S).until(
        lambda d: (
            d.find_elements("css selector", css)
            and d.execute_script("return Array.from(document.images).every(i => i.complete)")
        )
    )


def _no_alert(driver) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - reading it is the check


def _rendered_images(driver) -> list[int]:
    return driver.execute_script("return Array.from(document.images).map(i => i.naturalWidth)")


def _csp_violations(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]


def _check_card(card, prompt: str) -> None:
    assert card.find_element("css selector", ".prompt").text == prompt  # the markup shown as text
    states = [e.text for e in card.find_elements("css selector", ".verdict .state")]
    assert states == ["ok", "ok", "ok", "ok"], card.find_element("css selector", ".verdict").text
    assert card.find_element("css selector", ".summary").text == "Verified"
    facts = card.find_element("css selector", "dl").text
    assert "credits" in facts and "gpt-image-2" in facts
    assert "(local chain: no explorer)" in facts  # the embedded chain: no explorer link
    arweave = card.find_element("xpath", ".//dt[.='Arweave']/following-sibling::dd[1]/a")
    assert arweave.text.startswith("ar://") and arweave.get_attribute("href").startswith("http://127.0.0.1:")


def test_public_moment_page_renders_the_chain(browser, runtime, jobs, artifacts):
    browser.get(f"{runtime.base_url}/moments/{jobs[1]}")
    _settled(browser, "article.moment")
    _no_alert(browser)
    widths = _rendered_images(browser)
    assert widths and all(w > 0 for w in widths), widths
    assert browser.find_elements("css selector", 'img[src="x"]') == []
    assert browser.find_elements("css selector", "script") == []  # the public page has no script at all
    _check_card(browser.find_element("css selector", "article.moment"), HOSTILE)
    browser.save_screenshot(str(artifacts / "gallery-moment.png"))
    assert _csp_violations(browser) == []


def test_account_gallery_asks_for_the_key_and_shows_every_job(browser, runtime, jobs, artifacts):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{runtime.base_url}/gallery")
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element("id", "key-form").is_displayed())
    browser.find_element("id", "key").send_keys("im_sk_not-a-key")
    browser.find_element("css selector", "#key-form button").click()
    WebDriverWait(browser, WAIT_S).until(lambda d: "key" in d.find_element("id", "status").text.lower())
    assert browser.find_element("id", "key-form").is_displayed()

    key = runtime.account["api_key"]
    browser.find_element("id", "key").send_keys(key)
    browser.find_element("css selector", "#key-form button").click()
    _settled(browser, "#moments article.moment")
    _no_alert(browser)
    cards = browser.find_elements("css selector", "#moments article.moment")
    assert [c.get_attribute("id") for c in cards] == [f"job-{j}" for j in reversed(jobs)]  # newest first
    _check_card(cards[0], HOSTILE)
    _check_card(cards[1], "a koi in neon")
    widths = _rendered_images(browser)
    assert len(widths) == 2 and all(w > 0 for w in widths), widths
    assert browser.find_elements("css selector", 'img[src="x"]') == []
    assert key not in browser.current_url
    assert not browser.find_element("id", "key-form").is_displayed()
    browser.save_screenshot(str(artifacts / "gallery-account.png"))

    # The key stays in this tab: a reload shows the gallery again without asking.
    browser.refresh()
    _settled(browser, "#moments article.moment")
    assert len(browser.find_elements("css selector", "#moments article.moment")) == 2
    assert _csp_violations(browser) == []
