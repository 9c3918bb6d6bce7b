"""Issue 29 in Chromium, as a user would: Data health on a made dataset with one deliberately mislabelled photo lists it
first; Relabel moves it; Undo moves it back; after training, a clicked confusion-matrix cell shows its photos."""

import re
import shutil

import pytest

from tests.conftest import ASSETS, require_assets
from tests.test_browser import goto_page, shot
from tests.test_browser_dataset import TOKEN, camera_page, server  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.real_data]
PER_CLASS = 20


def make_pets(data_dir):
    """A made dataset (DATASETS/pets/<class>/*) of real photos, one dog filed under cats: named so the seeded split
    puts it in training, where the check's out-of-fold heads judge it."""
    from engine.data.scan import scan_dataset

    root = data_dir / "pets"
    train = ASSETS / "cats_vs_dogs_small" / "train"
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for src in sorted((train / cls).iterdir())[:PER_CLASS]:
            shutil.copy(src, root / cls / src.name)
    dogs = sorted((train / "dogs").iterdir())
    for i, src in enumerate(dogs[PER_CLASS : PER_CLASS + 10]):  # the first name the split puts in train
        odd = root / "cats" / f"odd-{i}-{src.name}"
        shutil.copy(src, odd)
        if str(odd) in scan_dataset(str(root)).files["train"]["cats"]:
            return root, odd
        odd.unlink()
    raise AssertionError("no name put the odd photo in the training split")


@pytest.mark.timeout(900)
def test_data_health_finds_the_mislabelled_photo_relabel_and_undo_move_it_and_a_cell_shows_its_photos(
    server,  # noqa: F811  (the fixture imported above)
    camera_page,  # noqa: F811
    tmp_path,
):
    require_assets()
    root, odd = make_pets(tmp_path / "data")
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

    page.get_by_role("button", name="Check data health").click()
    page.get_by_text(re.compile(r"Likely wrong labels \(\d+\)")).wait_for(timeout=300_000)
    page.get_by_role("button", name="Relabel", exact=True).first.wait_for(timeout=60_000)  # the rows draw after the heading
    main = page.locator('[data-testid="stMain"]').inner_text()
    listed = re.findall(r"[\w.-]+\.jpg", main.split("Likely wrong labels", 1)[1])
    assert listed and listed[0] == odd.name, listed[:5]  # the deliberately mislabelled photo comes first
    shot(page, "9_data_health")

    page.get_by_role("button", name="Relabel", exact=True).first.click()  # its row: the suggested class is chosen
    moved = root / "dogs" / odd.name
    page.get_by_role("button", name=re.compile(r"^Undo: relabelled .+ to dogs")).wait_for()
    assert moved.is_file() and not odd.exists()
    page.get_by_role("button", name=re.compile(r"^Undo: relabelled .+ to dogs")).click()
    page.get_by_text(re.compile(r"Undid")).first.wait_for()
    assert odd.is_file() and not moved.exists()  # back where it was

    goto_page(page, "Feature extraction")
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text(re.compile(r"finished: epoch \d+/\d+")).wait_for(timeout=300_000)
    page.get_by_text("Click a cell to see its photos.").first.wait_for(timeout=60_000)
    matrix = page.locator('[data-testid="stPlotlyChart"]').filter(has_text="Confusion matrix (rows: true").first
    cells = matrix.locator(".nsewdrag").first
    cells.scroll_into_view_if_needed()
    box = cells.bounding_box()
    cells.click(position={"x": box["width"] * 0.25, "y": box["height"] * 0.25}, force=True)  # the top-left cell
    page.get_by_text(re.compile(r"True \w+, predicted \w+: \d+ photo\(s\)")).wait_for(timeout=60_000)
    shot(page, "9b_confusion_cell")
