"""Takes the README's screenshots (docs/img/*.png) of the running dashboard, as a user sees it.

    .venv/bin/python scripts/screenshots.py --data DATA --weights FILE.weights.h5 [--photo cat.jpg] [--runs-dir DIR]

Trains three quick runs (MobileNetV2, 128 px, a few epochs: about a minute on two cores) into --runs-dir when it
holds none, serves the app on a free localhost port with that run store, opens every page in headless Chromium
(Playwright's Python package driving /usr/bin/chromium, as tests/test_browser.py does; never `playwright install`)
with the sidebar set through the URL, trains one short run from the Feature extraction form, and saves one PNG per
page (and one of that run's results), reduced to 256 colours to keep the README light.
E.g. with the test assets (the README's pictures used 100 + 50 photos per class of cats_vs_dogs_small, linked into
a folder of their own, so that the runs took a minute or two; the whole 3,000 photos take several):

    .venv/bin/python scripts/screenshots.py --data ../shared/assets/cats_vs_dogs_small \\
        --weights ../shared/assets/weights/mobilenet_v2_1.0_imagenet_no_top.weights.h5 --photo ../shared/assets/photos/cat.bmp
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("TLS_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1400, "height": 900}
MAX_HEIGHT = 1500  # px of a page kept: the top of a long page is what the tour talks about

# (file name, page's URL path, page title, what to wait for on it besides the title)
PAGES = [
    ("data_overview", "", "Data overview", "Images per class and split"),
    ("feature_extraction", "feature_extraction", "Feature extraction", "Train"),
    ("frozen_training", "frozen_training", "Frozen training", "Train"),
    ("fine_tuning", "fine_tuning", "Fine-tuning", "Train"),
    ("compare", "compare", "Compare", "Runs"),
    ("classify", "classify", "Classify", "Photos"),
]


def train_quick_runs(data: str, weights: str, runs_dir: Path, cache_dir: Path) -> None:
    """All three approaches, small and short: enough for curves, a Compare table and a model to classify with."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "run",
            "--data",
            data,
            "--approach",
            "all",
            "--backbone",
            "mobilenet_v2",
            "--weights",
            weights,
            "--image-size",
            "128",
            "--epochs",
            "6",
            "--fine-tune-epochs",
            "3",
            "--pooling",
            "avg",
            "--optimizer",
            "adam",
            "--learning-rate",
            "0.001",
            "--runs-dir",
            str(runs_dir),
            "--cache-dir",
            str(cache_dir),
            "--quiet",
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    """The app as scripts/app.sh serves it (serve.py), on localhost without a token; waits for its health check."""
    port = free_port()
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
        stderr=open(log, "w"),
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"streamlit did not start; see {log}")


def save_small(png: bytes, path: Path) -> None:
    """The screenshot with 256 colours (a dashboard has few): a third of the bytes, no visible change."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


def settle(page) -> None:
    """Waits until the script stopped running and every image on the page has loaded (thumbnails come late)."""
    quiet = 0
    for _ in range(240):
        running = page.locator('[data-testid="stStatusWidget"]').filter(has_text="Running").count()
        loading = page.evaluate("[...document.querySelectorAll('[data-testid=\"stMain\"] img')].filter(i => !i.complete).length")
        quiet = quiet + 1 if not running and not loading else 0
        if quiet >= 4:
            return
        page.wait_for_timeout(500)


def train_on_the_page(page, out: Path, written: list[Path]) -> None:
    """Trains a short run from the form, as a user would, and shoots its results (below the form)."""
    form = page.locator('[data-testid="stMainBlockContainer"]')
    for label, value in (("Epochs", "8"), ("Learning rate", "0.001")):
        form.get_by_label(label, exact=True).fill(value)
        form.get_by_label(label, exact=True).press("Enter")
    form.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("finished: epoch 8/8").wait_for(timeout=600_000)
    page.get_by_text("Validation accuracy", exact=True).first.wait_for()
    page.wait_for_timeout(4000)
    page.set_viewport_size({"width": VIEWPORT["width"], "height": 1100})
    page.get_by_text("Log-scale loss").first.evaluate("e => e.scrollIntoView({block: 'start'})")  # the curves, then the scores
    page.wait_for_timeout(1500)
    target = out / "feature_extraction_run.png"
    save_small(page.screenshot(), target)
    page.set_viewport_size(VIEWPORT)
    page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollTo(0, 0)")
    written.append(target)
    print(f"{target.relative_to(ROOT)}: {target.stat().st_size // 1024} KiB")


def take(url: str, query: dict, photo: str | None, out: Path, only: set[str]) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.set_default_timeout(120_000)
        for name, path, title, marker in PAGES:
            if only and name not in only:
                continue
            page.goto(f"{url}/{path}?{urllib.parse.urlencode(query)}")
            page.locator("h1", has_text=title).wait_for()
            page.get_by_text(marker).first.wait_for()
            if name == "feature_extraction":
                train_on_the_page(page, out, written)
            if name == "classify" and photo:
                page.locator('input[type="file"]').first.set_input_files(photo)
                page.locator('[data-testid="stMetric"]').first.wait_for()
                page.get_by_text("Show Grad-CAM").click()  # each model's heatmap under its answer
                page.wait_for_function("document.querySelectorAll('[data-testid=\"stImage\"]').length >= 2", timeout=300_000)
                page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 1")
            settle(page)
            page.wait_for_timeout(3000)  # Plotly charts draw after the script's last message
            height = min(MAX_HEIGHT, page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight"))
            page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], height)})
            page.wait_for_timeout(1500)
            target = out / f"{name}.png"
            save_small(page.screenshot(), target)
            page.set_viewport_size(VIEWPORT)
            written.append(target)
            print(f"{target.relative_to(ROOT)}: {target.stat().st_size // 1024} KiB")
        browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the dataset folder shown (the sidebar's Folder path)")
    parser.add_argument("--weights", required=True, help="a local MobileNetV2 weights file (the sidebar's Local file)")
    parser.add_argument("--photo", help="a photo Classify is given (none: Classify shows its empty form)")
    parser.add_argument("--runs-dir", help="a run store to show (default: a new one, with three quick runs trained)")
    parser.add_argument("--cache-dir", help="the feature cache the app uses (default: a new one; give the runs' to reuse it)")
    parser.add_argument("--only", default="", help="comma-separated page names to retake (default: all), e.g. compare,classify")
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"), help="where the PNGs go (default docs/img)")
    args = parser.parse_args(argv)
    data, weights = str(Path(args.data).resolve()), str(Path(args.weights).resolve())
    work = Path(tempfile.mkdtemp(prefix="tls-screenshots-"))
    runs_dir = Path(args.runs_dir) if args.runs_dir else work / "runs"
    cache_dir = Path(args.cache_dir) if args.cache_dir else work / "cache"
    if not runs_dir.is_dir() or not any(runs_dir.iterdir()):
        print("training three quick runs ...")
        train_quick_runs(data, weights, runs_dir, cache_dir)
    env = {
        **os.environ,
        "TLS_RUNS_DIR": str(runs_dir),
        "TLS_CACHE_DIR": str(cache_dir),
        "TLS_WARM_START": "0",
        "TLS_WEIGHTS_DIR": str(Path(weights).parent),
    }
    env.pop("TLS_ACCESS_TOKEN", None)  # localhost, as a user's first start
    proc, url = serve(env, work / "server.log")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    query = {
        "source": "folder",
        "folder": data,
        "backbone": "mobilenet_v2",
        "weights": "local",
        "weights_path": weights,
        "image_size": "128",
    }
    try:
        take(url, query, str(Path(args.photo).resolve()) if args.photo else None, out, set(filter(None, args.only.split(","))))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
