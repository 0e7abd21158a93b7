"""Talking to the fitting server: wire format, HTTP client, local-process launcher.

Standard library only, with relative imports only: this package is vendored into the
Blender add-on and must import under a bare Python with no third-party packages.
"""
