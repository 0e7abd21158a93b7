"""Pictures of fits and of their spectral flow (matplotlib, Agg backend: no display needed).

``image_pictures`` and ``audio_pictures`` write, next to a reconstruction ``STEM.ext``:

* ``STEM_compare.png``: input, reconstruction and error (every model);
* ``STEM_flow.png``: the spectral flow (NSTR only): local frequency, drift, transport residual,
  bandwidth for images; a spectrogram with the local frequency on top, the local spectrum S over
  time, drift and residual over time for audio.
"""

from nstr.viz.audio import audio_pictures
from nstr.viz.image import image_pictures

__all__ = ["image_pictures", "audio_pictures"]
