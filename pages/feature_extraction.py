from ui.access import require_token
from ui.approach_page import approach_page

require_token()  # also here: a fresh server's first request for this page's URL runs the page without app.py

approach_page(
    "feature_extraction",
    "Feature extraction",
    """**What is trained:** only a small dense head. **What is frozen:** the whole pretrained conv base.
**How:** every image goes through the base *once*; its feature maps are cached on disk and the head
trains on those arrays (no augmentation — each image has exactly one feature map). Fast, and a second
run with other head settings reuses the cache without touching the base.""",
)
