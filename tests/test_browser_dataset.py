"""Issue 20 in Chromium, as a new user would: make a dataset in the browser (uploads and camera shots per class),
train feature extraction on it with the local MobileNetV2 weights, classify a photo with it; an unreadable upload
is refused by name, a reload keeps the dataset, and the zip download re-imports to the same counts."""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ASSETS, ROOT, import_or_missing, missing, require_assets
from tests.test_browser import CHROMIUM, goto_page, shot
from tests.test_serving import free_port, wait_for_health

TOKEN = "dataset-test-token"
PHOTOS = 12
pytestmark = [pytest.mark.slow, pytest.mark.real_data]


@pytest.fixture
def server(tmp_path):
    """The app behind its token, with an empty datasets folder and the assets' weights as the local weights."""
    port = free_port()
    env = {
        **os.environ,
        "TLS_RUNS_DIR": str(tmp_path / "runs"),
        "TLS_CACHE_DIR": str(tmp_path / "cache"),
        "TLS_SAMPLE_DIR": str(tmp_path / "sample"),
        "TLS_DATASETS_DIR": str(tmp_path / "data"),
        "TLS_DATA_ROOTS": os.pathsep.join([str(tmp_path), str(ASSETS)]),
        "TLS_WEIGHTS_DIR": str(ASSETS / "weights"),
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
def camera_page():
    """Chromium with a fake camera that needs no permission prompt (its test pattern is the photo)."""
    playwright = import_or_missing(
        "playwright.sync_api", "the playwright package is not installed (pip install -r requirements-dev.txt)"
    )
    if not os.path.exists(CHROMIUM):
        missing(f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set TLS_CHROMIUM)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
            ],
        )
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        context.grant_permissions(["camera"])
        page = context.new_page()
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            shot(page, "dataset_last_state")
            browser.close()


def add_photos(page, cls: str, files: list) -> None:
    from playwright.sync_api import expect  # installed: camera_page checked it

    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text=f"Photos of {cls}")
    expect(uploader).to_have_count(1, timeout=60_000)  # a rerun under load can briefly show a stale copy beside it
    uploader.locator('input[type="file"]').set_input_files([str(f) for f in files])


def take_camera_shot(page, cls: str) -> None:
    from playwright.sync_api import expect

    camera = page.locator('[data-testid="stCameraInput"]').filter(has_text=f"Take a photo of {cls}")
    if camera.count() == 0:  # the camera is off until its toggle is on (a retry finds it on)
        toggle = page.get_by_text(f"Camera for {cls}", exact=True)
        expect(toggle).to_have_count(1, timeout=60_000)
        toggle.click()
    expect(camera).to_have_count(1, timeout=60_000)
    clear = camera.get_by_role("button", name="Clear photo")
    if clear.count():  # a retry: the last shot is still shown, not counted
        clear.click()
    camera.locator("video").wait_for()
    camera.locator("video").evaluate("v => new Promise(ok => v.readyState >= 2 ? ok() : v.addEventListener('loadeddata', ok))")
    camera.get_by_role("button", name="Take Photo").click()


def add_camera_shot(page, cls: str, before: int) -> None:
    """Takes a shot and waits for the class to count it. Under the full suite's load one shot in CI never reached the
    server (the count stayed at 12 for 60 s); a user would click again, so the test does, up to three shots.
    A late first shot can then make two: the test reads the final counts from disk."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(3):
        take_camera_shot(page, cls)
        try:
            page.get_by_text(re.compile(rf"{cls} · (?!{before}\b)\d+ images")).wait_for(timeout=40_000)
            break
        except PlaywrightTimeout:
            refused = page.get_by_text(re.compile(r"Refused camera")).all_inner_texts()
            assert not refused, refused  # a shot the decoder refused is a product bug, not a slow page
            print(f"camera shot {attempt + 1} for {cls} not counted after 40 s; taking another")
    else:
        raise AssertionError(f"three camera shots for {cls}, none counted")


@pytest.mark.timeout(900)  # 50-95 s alone, 125-182 s under the full suite's load
def test_make_a_dataset_train_and_classify_with_it(server, camera_page, tmp_path):
    require_assets()
    page = camera_page
    page.goto(server)
    page.get_by_label("Access token").fill(TOKEN)
    page.get_by_role("button", name="Open").click()
    page.locator("h1", has_text="Data overview").wait_for()
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Make a dataset", exact=True).click()
    sidebar.get_by_role("textbox", name="Dataset name").fill("pets")
    sidebar.get_by_role("textbox", name="Dataset name").press("Enter")
    page.get_by_text("Make a dataset: pets").wait_for()
    for cls in ("cats", "dogs"):
        page.get_by_role("textbox", name="New class").fill(cls)
        page.get_by_role("button", name="Add class").click()
        page.get_by_text(f"Photos of {cls}").wait_for()
    page.get_by_text("Add photos to at least two classes").wait_for()  # not a folder's advice (a flat layout)
    assert page.get_by_text("Choose a dataset in the sidebar:").count() == 0  # one is chosen: no box says otherwise

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not a photo")
    train = ASSETS / "cats_vs_dogs_small" / "train"
    add_photos(page, "cats", sorted((train / "cats").iterdir())[:PHOTOS] + [broken])
    page.get_by_text(re.compile(r"Refused broken\.jpg: .+")).wait_for()  # named, with the decoder's reason
    page.get_by_text(f"cats · {PHOTOS} images").wait_for()
    page.get_by_text(f"Added {PHOTOS} images").wait_for()
    page.get_by_role("button", name="Remove", exact=True).first.click()  # to the trash, with an Undo
    page.get_by_text(f"cats · {PHOTOS - 1} images").wait_for()
    assert page.get_by_text(f"Added {PHOTOS} images").count() == 0  # the upload's line left with the next action
    page.get_by_role("button", name="Undo").click()
    page.get_by_text(f"cats · {PHOTOS} images").wait_for()
    dogs = sorted((train / "dogs").iterdir())[:PHOTOS]
    add_photos(page, "dogs", dogs)
    try:
        page.get_by_text(f"dogs · {PHOTOS} images").wait_for(timeout=45_000)
    except Exception:  # set while Undo's rerun replaced the uploader (full suite's load): again; a repeat is a skipped duplicate
        add_photos(page, "dogs", dogs)
        page.get_by_text(f"dogs · {PHOTOS} images").wait_for(timeout=90_000)
    for cls in ("cats", "dogs"):
        add_camera_shot(page, cls, before=PHOTOS)
    assert sorted(p.name for p in (tmp_path / "data" / "pets").iterdir() if not p.name.startswith(".")) == ["cats", "dogs"]
    from engine.data import builder

    made = builder.counts(tmp_path / "data" / "pets")
    assert made["cats"] > PHOTOS and made["dogs"] > PHOTOS, made  # 12 uploads and one camera shot (or two) each
    assert not list((tmp_path / "data").rglob("broken*"))
    shot(page, "7_make_a_dataset")

    page.reload()  # the dataset is a folder, and its name is in the URL: a reload opens it again
    page.get_by_text(f"cats · {made['cats']} images").wait_for()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download as zip").click()
    download.value.save_as(tmp_path / "pets.zip")
    out = subprocess.run(
        [sys.executable, "-m", "engine", "import-zip", str(tmp_path / "pets.zip"), str(tmp_path / "imported")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert builder.counts(out) == made

    goto_page(page, "Feature extraction")
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text(re.compile(r"finished: epoch \d+/\d+")).wait_for(timeout=240_000)
    val = page.locator('[data-testid="stMetric"]').filter(has_text="Validation accuracy").first
    assert re.fullmatch(r"[01]\.\d{3}", val.locator('[data-testid="stMetricValue"]').inner_text())

    goto_page(page, "Classify")
    page.locator('input[type="file"]').first.set_input_files(str(ASSETS / "photos" / "cat_720p.jpg"))
    metric = page.locator('[data-testid="stMetric"]').first
    metric.wait_for(timeout=120_000)
    assert metric.locator('[data-testid="stMetricValue"]').inner_text() in ("cats", "dogs")
    assert page.get_by_text(re.compile(r"pets · ")).count() >= 1  # the model's label names the made dataset
    shot(page, "8_classify_made_dataset")
