"""Transfer Learning Studio engine: datasets, backbones, the three approaches, run store, CLI.

Never imports streamlit; the dashboard and the CLI both call into this package.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter off stderr

__version__ = "0.1.0"
