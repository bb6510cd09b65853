"""Simulated event recordings: an event-camera pixel model over frames, and N-MNIST's saccades for images.

- ``pixel``: frames of intensity with timestamps -> events (``frames_to_events``, ``PixelParams``).
- ``saccades``: a static image shown on a display and recorded by a sensor making N-MNIST's three
  saccades (``saccades``, ``SaccadeParams``), with defaults calibrated to the real recordings.
- ``randomize``: parameters drawn per sample around the calibrated ones, for training.
- ``images``: the images to simulate: MNIST's IDX files, folders of PNG/JPEG per class.

It produces the package's event arrays and knows nothing of models (docs/DESIGN.md); training reaches
it through ``stc_zoo.data.simulated``, the command line through ``stc-zoo simulate``.
"""

from .pixel import PixelParams, frames_to_events
from .saccades import SaccadeParams, saccades

__all__ = ["PixelParams", "frames_to_events", "SaccadeParams", "saccades"]
