"""Spectral-flow quantities: what the vertex / pixel / sample colours show.

* :mod:`nstr.spectral.measured`: the MODEL-INDEPENDENT readout ("measured local frequency"): a
  small window of the fitted signal around each point (the tangent plane of a surface, a short
  time window of audio, a pixel patch of an image), detrended, Hann-windowed and Fourier
  transformed; its power-weighted RMS frequency with the window's own spread removed. Works on
  any model (NSTR and the baselines) and is what ``local_frequency`` means in every result.
* :mod:`nstr.spectral.flow`: NSTR's INTERNAL readout from its local spectrum S(x) and the
  transport network F_theta (the method's definitions; see backend/docs/spectral-flow.md for
  what it measures and where it fails).
"""

from nstr.spectral.flow import flow_from_state, spectral_flow, transport_prediction_gain

__all__ = ["flow_from_state", "spectral_flow", "transport_prediction_gain"]
