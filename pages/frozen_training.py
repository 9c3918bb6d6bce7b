from pages import shared
from ui.access import require_token

require_token()  # also here: a fresh server's first request for this page's URL runs the page without app.py

shared.approach_page(
    "frozen",
    "Frozen training",
    """**What is trained:** the dense head. **What is frozen:** the pretrained base, inside the model and
always in inference mode. **Why:** random rotations, shifts, zooms and flips show the head a new version
of every image each epoch, which fights over-fitting on small datasets — at the price of running the base
on every batch.""",
    extra_fields=shared.augmentation_fields,
)
