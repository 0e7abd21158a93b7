"""Validation cases whose spectral flow is known exactly (the checks of issue 9).

* :mod:`nstr.validation.surfaces`: a slab whose top is a chirp heightfield, a sphere with latitude
  ripples whose frequency rises from pole to pole, and their flat / smooth controls;
* :mod:`nstr.validation.scores`: rho, calibration slope, control CV, drift cosine.
1-D chirps and the drifting texture live in :mod:`nstr.signals.synthetic`.
"""
