"""Signals for the image and audio tasks: validated loading and saving, metrics, synthetic test signals.

What this package exports is numpy only (no torch), so loaders can validate a file
before a fit starts and the benchmark can build its inputs cheaply. The torch side
that the image and audio tasks share (the sample-regression objective, coordinates,
band limits) is ``nstr.signals.fitting``, imported only by the tasks.
"""

from nstr.signals.audio_io import Audio, load_wav, save_wav
from nstr.signals.image_io import load_image, save_image
from nstr.signals.metrics import psnr, snr_db, ssim
from nstr.signals.synthetic import chirp, drifting_texture, skimage_image

__all__ = ["Audio", "load_wav", "save_wav", "load_image", "save_image", "psnr", "ssim", "snr_db",
           "chirp", "drifting_texture", "skimage_image"]
