"""Pictures of fits and of their spectral flow (matplotlib, Agg backend: no display needed).

``image_pictures`` and ``audio_pictures`` write, next to a reconstruction ``STEM.ext``:

* ``STEM_compare.png``: input, reconstruction and error (every model);
* ``STEM_flow.png`` (every model): the measured local frequency of the fit beside the same readout
  of the input (images: maps, with drift and bandwidth; audio: on top of the input's spectrogram,
  with drift), and for NSTR its internal readout, S over time and the transport residual.
"""

from nstr.viz.audio import audio_pictures
from nstr.viz.image import image_pictures

__all__ = ["image_pictures", "audio_pictures"]
