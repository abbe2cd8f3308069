"""Benchmark settings: a fixed thread count and the inductor cache inside the build folder."""

import os

os.environ.setdefault(
    "TORCHINDUCTOR_CACHE_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), "build", "inductor-cache")
)
