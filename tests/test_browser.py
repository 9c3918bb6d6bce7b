"""One real-browser test: the running app in headless Chromium, driven like a user would.

Starts `streamlit run serve.py` (app.py behind the access gate, with a token) on a free localhost port, drives Debian's
/usr/bin/chromium through Playwright's Python package (never `playwright install`), and saves a
screenshot of every page under test-artifacts/browser/.
"""

import os
import re
import subprocess
import sys
from urllib.parse import parse_qs, urlparse

import pytest

from tests.conftest import ASSETS, ROOT, import_or_missing, missing
from tests.test_serving import free_port, wait_for_health

CHROMIUM = os.environ.get("TLS_CHROMIUM", "/usr/bin/chromium")
SHOTS = ROOT / "test-artifacts" / "browser"
TOKEN = "browser-test-token"
pytestmark = [pytest.mark.slow, pytest.mark.real_data]  # the Classify step uploads a real photo when the assets are there


@pytest.fixture
def server(tmp_path):
    """The app served on localhost with its own run store, cache and sample folder."""
    port = free_port()
    env = {
        **os.environ,
        "TLS_RUNS_DIR": str(tmp_path / "runs"),
        "TLS_CACHE_DIR": str(tmp_path / "cache"),
        "TLS_SAMPLE_DIR": str(tmp_path / "sample"),
        "TLS_DATA_ROOTS": os.pathsep.join([str(tmp_path), str(ASSETS)]),
        "TLS_WARM_START": "1",
        "TLS_ACCESS_TOKEN": TOKEN,
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "serve.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "server.log", "w"),
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_health(url, proc, tmp_path / "server.log")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def browser_page():
    playwright = import_or_missing(
        "playwright.sync_api", "the playwright package is not installed (pip install -r requirements-dev.txt)"
    )
    if not os.path.exists(CHROMIUM):
        missing(f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set TLS_CHROMIUM)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            shot(page, "last_state")  # what the page showed when the test ended (useful on failure)
            browser.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def goto_page(page, title: str) -> None:
    """Client-side page switch via the sidebar navigation (same session, like a user)."""
    for attempt in range(3):  # a click that lands while the page reruns can be dropped; a user clicks again
        page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
        try:
            page.locator("h1", has_text=title).wait_for(timeout=30_000 if attempt < 2 else 60_000)
            return
        except Exception:
            if attempt == 2:
                raise


def settings_stick(page, folder: str) -> None:
    """Values set on Frozen training survive three other pages and a source switch and back; so does a typed folder
    (issue 31: epochs 3 / dropout 0.5 came back as 20 / 0.60, the folder path as an empty box)."""
    sidebar, main = page.locator('[data-testid="stSidebar"]'), page.locator('[data-testid="stMainBlockContainer"]')
    dropout = main.locator('[data-testid="stSlider"]').filter(has_text="Dropout")
    main.get_by_label("Epochs", exact=True).fill("3")
    main.get_by_label("Epochs", exact=True).press("Enter")
    page.get_by_role("heading", name="Hyper-parameters (changed by you)").wait_for()
    thumb = dropout.get_by_role("slider")

    # 0.60 -> 0.55 -> 0.50, a step each, each one awaited on the server (the URL) before the next: under the full
    # suite's load a second press sent while the first one's rerun ran was lost in Chromium (CI: the slider stayed
    # at 0.55), so a press the page shows no answer to is pressed again, as a user would.
    def server_drop() -> float:  # the dropout the server last wrote into the URL (0.60, the default, is not written)
        query = parse_qs(urlparse(page.url).query)
        return float(query.get("f_frozen_drop", ["0.6"])[0])

    for step in (0.55, 0.5):
        for attempt in range(3):
            if server_drop() <= step + 1e-9:
                break
            thumb.focus()
            thumb.press("ArrowLeft")
            try:
                page.wait_for_function(
                    "s => parseFloat(new URLSearchParams(location.search).get('f_frozen_drop') || '0.6') <= s + 1e-9",
                    arg=step,
                    timeout=30_000,
                )
                break
            except Exception:
                if attempt == 2:
                    raise
    assert server_drop() == pytest.approx(0.5)
    dropped = """() => [...document.querySelectorAll('[data-testid="stSlider"]')].some(s => s.innerText.includes('Dropout')
        && parseFloat(s.querySelector('[data-testid="stSliderThumbValue"]').innerText) === 0.5)"""
    page.wait_for_function(dropped)
    has_value = "([label, v]) => [...document.querySelectorAll(`input[aria-label='${label}']`)].some(i => i.value === v)"
    sources = sidebar.get_by_role("radiogroup", name="Dataset")
    sources.get_by_text("Folder path").click()
    sidebar.get_by_role("textbox", name="Folder").fill(folder)
    sidebar.get_by_role("textbox", name="Folder").press("Enter")
    page.wait_for_function("() => location.search.includes('folder=')")
    sources.get_by_text("Built-in sample").click()
    for title in ("Data overview", "Compare", "Feature extraction"):
        goto_page(page, title)
    sources.get_by_text("Folder path").click()
    page.wait_for_function(has_value, arg=["Folder", folder])  # the typed path is back, not an empty box
    sources.get_by_text("Built-in sample").click()
    page.wait_for_function("() => location.search.includes('source=sample')")
    goto_page(page, "Frozen training")
    page.wait_for_function(has_value, arg=["Epochs", "3"])
    page.wait_for_function(dropped)


@pytest.mark.timeout(
    1200
)  # one long user session (six pages, ten jobs): 260-300 s under the full suite's load, 516 s on a slow day
def test_dashboard_end_to_end(server, browser_page, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # installed: browser_page checked it

    page = browser_page
    # Behind the gate: the login page first, then the app (the rest of the test runs on its cookie).
    page.goto(server)
    page.get_by_text("This dashboard needs its access token").wait_for()
    assert page.locator('[data-testid="stSidebar"]').count() == 0
    page.get_by_label("Access token").fill(TOKEN)
    page.get_by_role("button", name="Open").click()
    page.locator("h1", has_text="Data overview").wait_for()
    page.get_by_text("Images per class and split").wait_for()
    sidebar = page.locator('[data-testid="stSidebar"]')

    # Values set before the browser drew their widgets survive: the augmentation fields (shown on the Data
    # overview too) and the split sliders in the sidebar's collapsed expander once came back unchecked / 0 / 5 %.
    goto_page(page, "Frozen training")  # at once, as a quick user does
    page.wait_for_timeout(3000)
    main = page.locator('[data-testid="stMainBlockContainer"]')
    assert main.get_by_role("checkbox", name="Data augmentation").is_checked()
    assert main.get_by_role("checkbox", name="Vertical flip (the lecture's)").is_checked()
    assert main.get_by_role("spinbutton", name="Augmented views (K)").input_value() == "3"
    sidebar.get_by_text("Split for flat folders").click()
    sidebar.get_by_text("train 70% · validation 15% · test 15%").wait_for()
    settings_stick(page, str(tmp_path / "sample"))
    goto_page(page, "Data overview")

    # Sidebar: VGG16 (its few layers build and train quickest), random weights (no download), the smallest image size.
    sidebar.get_by_text("Image size (px)").wait_for()  # widgets render lazily on a slow machine
    sidebar.locator('[data-testid="stSelectbox"]').filter(has_text="Backbone").click()
    page.get_by_role("option", name="VGG16 (the lecture's)").click()
    assert sidebar.get_by_role("combobox", name="Backbone").input_value() == "VGG16 (the lecture's)"
    sidebar.get_by_role("radiogroup", name="Weights").get_by_text("None (random)").click()
    thumb = sidebar.get_by_role("slider").first
    thumb.focus()
    thumb.press("Home")
    sidebar.get_by_text("32").first.wait_for()
    shot(page, "1_data_overview")

    # Feature extraction: train a short job, watch the curves appear.
    goto_page(page, "Feature extraction")
    assert sidebar.get_by_role("radio", name="None (random)").is_checked()  # sidebar state survived the switch
    form = page.locator('[data-testid="stMainBlockContainer"]')
    form.get_by_label("Epochs", exact=True).fill("2")
    form.get_by_label("Epochs", exact=True).press("Enter")
    form.get_by_label("Learning rate", exact=True).fill("0.001")
    form.get_by_label("Learning rate", exact=True).press("Enter")
    form.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("finished: epoch 2/2").wait_for(timeout=180_000)
    assert page.locator(".js-plotly-plot").count() >= 2
    page.get_by_text("Validation accuracy", exact=True).wait_for()
    shot(page, "2_feature_extraction")
    # The learning-rate finder on the features that run cached; Use this rate moves the drawn field (AppTest cannot see that).
    page.get_by_text("Learning-rate finder: which rate to train at").click()
    suggested = page.locator('[data-testid="stMetric"]').filter(has_text="Suggested learning rate")
    for attempt in range(3):  # a click that lands while the page reruns can be dropped (under CI load): a user clicks again
        page.get_by_role("button", name="Find a learning rate").click()
        try:
            page.get_by_text(re.compile(r"Learning-rate finder (queued|running)")).or_(suggested).first.wait_for(timeout=60_000)
            break
        except PlaywrightTimeout:
            print(f"finder click {attempt + 1} not taken after 60 s; clicking again")
    suggested.wait_for(timeout=300_000)  # the page reruns slowly under the full suite's load
    assert page.locator(".js-plotly-plot").count() >= 3  # the loss against the learning rate, beside the run's curves
    rate = float(suggested.locator('[data-testid="stMetricValue"]').inner_text())
    page.get_by_role("button", name="Use this rate").click()
    page.wait_for_function(
        f"() => [...document.querySelectorAll('input[aria-label=\"Learning rate\"]')].some(i => Math.abs(parseFloat(i.value) - {rate}) < 1e-9)"
    )
    shot(page, "2b_learning_rate_finder")
    # A 2 x 2 sweep (learning rate x dropout): four jobs on the features cached above, the heatmap and every trial's
    # parallel coordinates, then Apply best moves the drawn learning-rate field to the best point's rate.
    page.get_by_text("Sweep: try several values").click()
    knobs = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Knobs to vary")
    for knob in ("learning-rate", "dropout"):
        option = page.get_by_role("option", name=knob, exact=True)
        values_field = page.get_by_role("textbox", name=f"Values of {knob} (comma-separated)")
        for attempt in range(6):  # a rerun (the job panel's poll) can close the list, or drop the choice, under load
            knobs.click()
            try:
                option.click(timeout=10_000)
            except PlaywrightTimeout:
                pass
            page.keyboard.press("Escape")  # closing the list sends the choice to the server
            try:
                values_field.wait_for(timeout=15_000)
                break
            except PlaywrightTimeout:
                if attempt == 5:
                    raise
    for label, values in (
        ("Values of learning-rate (comma-separated)", "0.001, 0.01"),
        ("Values of dropout (comma-separated)", "0.2, 0.5"),
    ):
        form.get_by_role("textbox", name=label).fill(values)
        form.get_by_role("textbox", name=label).press("Enter")
    page.get_by_text("4 point(s) × 1 seed(s) = 4 job(s).").wait_for()
    page.get_by_role("button", name="Queue sweep").click()
    page.wait_for_function(
        """() => {
        const plots = [...document.querySelectorAll('.js-plotly-plot')].map(p => (p.data || [])[0] || {});
        const grid = plots.some(d => d.type === 'heatmap' && d.z.length === 2 && d.z.every(row => row.length === 2 && row.every(v => v !== null)));
        // all four trials (the 3x3 heatmap: the run's confusion matrix)
        return grid && plots.some(d => d.type === 'parcoords' && d.dimensions[0].values.length === 4);
    }""",
        timeout=240_000,
    )
    best = page.locator('[data-testid="stCaptionContainer"]').filter(has_text=re.compile(r"^learning-rate=")).first.inner_text()
    best_rate = float(re.search(r"learning-rate=([0-9.e-]+)", best).group(1))
    # A click while the sweep's live fragment hands over to the whole page (its last point just ended) can be lost
    # (CI: the rate stayed the finder's for 60 s): a click the form shows no answer to is clicked again, as a user would.
    rates = "[...document.querySelectorAll('input[aria-label=\"Learning rate\"]')]"
    applied = f"() => {rates}.some(i => Math.abs(parseFloat(i.value) - {best_rate}) < 1e-9)"
    for attempt in range(3):
        page.get_by_role("button", name="Apply best").click()
        try:
            page.wait_for_function(applied, timeout=40_000)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    shot(page, "2c_sweep")

    # Frozen training: a short job completes; then a long one survives a page switch, a second tab
    # and a refresh, and Stop keeps its epochs.
    goto_page(page, "Frozen training")
    form = page.locator('[data-testid="stMainBlockContainer"]')
    form.get_by_label("Epochs", exact=True).fill("2")
    form.get_by_label("Epochs", exact=True).press("Enter")
    form.get_by_label("Learning rate", exact=True).fill("0.001")
    form.get_by_label("Learning rate", exact=True).press("Enter")
    form.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("finished: epoch 2/2").wait_for(timeout=180_000)
    # Long enough to still be running minutes later, now that epochs only train the head on
    # cached views: batch size 1 makes each epoch ~180 steps.
    form.get_by_label("Epochs", exact=True).fill("500")
    form.get_by_label("Epochs", exact=True).press("Enter")
    form.get_by_label("Batch size", exact=True).fill("1")
    form.get_by_label("Batch size", exact=True).press("Enter")
    form.get_by_role("spinbutton", name="Repeat with N seeds").fill(
        "2"
    )  # two jobs: the running one on top, the queued one under it
    form.get_by_role("spinbutton", name="Repeat with N seeds").press("Enter")
    form.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text(re.compile(r"running: epoch [1-9]\d*/500")).wait_for(timeout=120_000)
    page.get_by_text(re.compile(r"Queued 1/1 \(seed 43, 2 of 2\)")).wait_for()
    form.get_by_role("button", name="Train", exact=True).click()  # the same settings again: refused, not queued twice
    page.get_by_text("Not queued again: the same settings are already running").wait_for()
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text(re.compile(r"cancelled \(seed 43, 2 of 2\): run .* never started")).wait_for()
    form.get_by_role("spinbutton", name="Repeat with N seeds").fill("1")
    form.get_by_role("spinbutton", name="Repeat with N seeds").press("Enter")
    goto_page(page, "Compare")
    goto_page(page, "Frozen training")
    page.get_by_text("running: epoch").wait_for()
    second = page.context.new_page()
    second.set_default_timeout(60_000)  # a fresh session builds its model summary while the job keeps both cores busy
    second.goto(f"{server}/frozen_training")
    second.get_by_text(re.compile(r"running: epoch \d+/500")).wait_for()  # same job, not a new one
    assert second.get_by_text(re.compile(r"running: epoch \d+/500")).count() == 1  # one panel: the job on top, nothing queued
    second.close()
    page.reload()
    page.locator("h1", has_text="Frozen training").wait_for()
    page.get_by_text("running: epoch").wait_for()
    assert sidebar.get_by_role("radio", name="None (random)").is_checked()  # settings survive a refresh (URL)
    assert sidebar.get_by_role("combobox", name="Backbone").input_value() == "VGG16 (the lecture's)"
    shot(page, "3_frozen_training")
    page.locator('[data-testid="stMainBlockContainer"]').get_by_role(
        "button", name="Stop", exact=True
    ).click()  # not Streamlit's own status-bar Stop
    page.get_by_text("stopped: epoch").wait_for(timeout=120_000)
    page.get_by_text("stopped by request").first.wait_for(timeout=30_000)  # the message may render a poll later

    # Fine-tuning: one epoch per phase.
    goto_page(page, "Fine-tuning")
    form = page.locator('[data-testid="stMainBlockContainer"]')
    form.get_by_label("Epochs", exact=True).fill("1")
    form.get_by_label("Epochs", exact=True).press("Enter")
    form.get_by_label("Fine-tuning epochs", exact=True).fill("1")
    form.get_by_label("Fine-tuning epochs", exact=True).press("Enter")
    form.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("finished: epoch 2/2").wait_for(timeout=180_000)
    shot(page, "4_fine_tuning")
    # The run's feature map: the pretrained base and the fine-tuned base side by side, on the same images.
    page.get_by_text("Feature map of this run").first.click()
    page.get_by_role("button", name="Draw the feature map").first.click()
    try:
        page.get_by_text("Classes apart in this map").nth(1).wait_for(timeout=150_000)
    except Exception:  # the click landed during a rerun under the full suite's load (as the finder's can): again
        page.get_by_role("button", name="Draw the feature map").first.click()
        page.get_by_text("Classes apart in this map").nth(1).wait_for(timeout=300_000)
    assert page.get_by_text("Classes apart in this map").count() == 2
    shot(page, "4b_feature_map")

    # Compare: the three approaches side by side, with curves.
    goto_page(page, "Compare")
    page.get_by_text("Download CSV").wait_for()
    legend = page.locator(".js-plotly-plot").first
    for name in ("Feature extraction", "Frozen + augmentation", "Fine-tuning"):
        legend.get_by_text(name, exact=False).first.wait_for()
    page.get_by_text("Ensemble of the selected runs", exact=True).click()  # the three approaches averaged, its own row
    page.get_by_text("Choose runs and weighting on validation").wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0
    shot(page, "5_compare")

    # Classify: upload a photo, see a prediction with its inference time.
    goto_page(page, "Classify")
    photo = ASSETS / "photos" / "cat_720p.jpg"
    if not photo.exists():
        photo = SHOTS / "1_data_overview.png"  # any image does for the mechanics
    page.locator('input[type="file"]').first.set_input_files(str(photo))
    page.locator('[data-testid="stMetric"]').first.wait_for(timeout=120_000)
    assert " ms" in page.locator('[data-testid="stMetric"]').first.inner_text()
    shot(page, "6_classify")
