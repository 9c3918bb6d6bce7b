from ui.access import require_token
from ui.approach_page import approach_page
from ui.form_fields import augmentation_fields

require_token()  # also here: a fresh server's first request for this page's URL runs the page without app.py

approach_page(
    "frozen",
    "Frozen training",
    """**What is trained:** the dense head. **What is frozen:** the pretrained base, inside the model and
always in inference mode. **Why:** random rotations, shifts, zooms and flips show the head other versions
of every image, which fights over-fitting on small datasets. **How it stays fast:** the frozen base runs
once on each of *K* augmented views of the training set (cached on disk for later tries); the epochs cycle
through the views, so they only train the head. K = epochs gives every epoch fresh images, as the lecture does.""",
    extra_fields=lambda cfg, _approach: augmentation_fields(cfg),  # the augmentation keys are shared, not per approach
)
