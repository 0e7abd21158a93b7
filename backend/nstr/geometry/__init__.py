"""Meshes for the SDF task: loading and validation, normalisation, ground truth,
sampling, marching cubes, per-vertex spectral-flow attributes, export and metrics.

Each stage is its own module; this package imports nothing heavy at import time.
"""
