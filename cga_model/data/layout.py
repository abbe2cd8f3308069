"""Old home of the modality order, now ``layouts.MODALITIES`` (kept as an alias for modules that still import it)."""
from .layouts import MODALITIES  # noqa: F401
