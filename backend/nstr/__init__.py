"""NSTR: Neural Spectral Transport Representation fields.

This package's top level stays import-light (standard library only) so that
``nstr.remote`` can be imported inside Blender's Python, which has no torch.
"""

__version__ = "0.1.0"
