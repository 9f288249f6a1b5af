"""End to end: `enhance-edge serve` and its page in a real headless Chromium.

The screenshot is saved in the test's tmp_path, and also in $ENHANCE_EDGE_SCREENSHOTS when
that names a folder (for CI artifacts and for looking at the page)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PIL import Image

from enhance_edge.core.model import bundled_models

FACE = sorted((Path(__file__).parents[3] / "data" / "yale_test").glob("*.png"))[0]


def test_the_page_upscales_a_face_and_reports_a_bad_file(browser, live_server, tmp_path):
    from selenium.webdriver.common.by import By  # the browser fixture has checked it is installed
    from selenium.webdriver.support.ui import WebDriverWait

    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("not an image")
    browser.get(live_server.url)
    WebDriverWait(browser, 60).until(lambda page: page.find_element(By.ID, "version").text)
    # Plain words beside the technical ones, for the precisions installed only, the scale of the
    # model chosen, and the quality figure `enhance-edge models` prints.
    int8 = any(bundled.precision == "int8" for bundled in bundled_models() if bundled.name == "default")
    explain = browser.find_element(By.ID, "explain").text
    assert ("int8 = faster, fp32 = most exact" in explain) == int8 and ("int8" in explain) == int8
    assert "fp32 · most exact" in browser.find_element(By.ID, "precision").text
    assert browser.find_element(By.TAG_NAME, "h1").text == "Upscale faces ×2"
    assert "test PSNR " in browser.find_element(By.ID, "model-facts").text
    browser.find_element(By.ID, "file-input").send_keys(f"{FACE}\n{not_an_image}")

    def finished(page):
        cards = page.find_elements(By.CSS_SELECTOR, ".card")
        return len(cards) == 2 and all(card.get_attribute("data-state") in ("done", "failed") for card in cards)

    WebDriverWait(browser, 120).until(finished)
    face_card, bad_card = browser.find_elements(By.CSS_SELECTOR, ".card")

    assert face_card.get_attribute("data-state") == "done"
    shown = face_card.find_element(By.CSS_SELECTOR, ".slider-stage img.after")
    natural = browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", shown)
    with Image.open(FACE) as original:
        assert natural == [2 * original.width, 2 * original.height]
    download = face_card.find_element(By.CSS_SELECTOR, "a.download")
    assert download.get_attribute("download") == f"{FACE.stem}_x2.png"
    assert face_card.find_element(By.CSS_SELECTOR, ".status-text").text.startswith("Done in ")

    assert bad_card.get_attribute("data-state") == "failed"
    assert bad_card.find_element(By.CSS_SELECTOR, ".error-line").text == \
        "notes.txt: not an image (or a format Pillow cannot read)"

    screenshot = tmp_path / "enhance-edge-page.png"
    assert browser.save_screenshot(str(screenshot))
    with Image.open(screenshot) as picture:
        assert picture.width > 0 and picture.height > 0
    if os.environ.get("ENHANCE_EDGE_SCREENSHOTS"):
        folder = Path(os.environ["ENHANCE_EDGE_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, folder / screenshot.name)

    # Side by side at 4x pixel zoom: both images drawn at four screen pixels per output pixel.
    face_card.find_element(By.CSS_SELECTOR, '[data-mode="side"]').click()
    face_card.find_element(By.CSS_SELECTOR, '[data-zoom="4"]').click()
    widths = browser.execute_script(
        "return [...arguments[0].querySelectorAll('.pane img')].map(image => image.getBoundingClientRect().width)",
        face_card)
    assert widths == [4 * natural[0], 4 * natural[0]]
