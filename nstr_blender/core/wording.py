"""How a message's fix tells the user to act: the panel's buttons, or scripts/fit.py's flags.

One source per fix: the panel and the command line share the code that finds a problem, and that
code takes a :class:`Wording` to say the fix in the caller's language (a command-line user has no
button to press, a panel user no flag to pass).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Wording:
    """The fixes that differ between the panel and the command line."""

    select: str          # how to choose the objects to fit
    select_meshes: str   # ... when what was chosen holds no mesh
    start: str           # how to start the backend
    reach: str           # how to reach a backend that does not answer
    python: str          # where to name the backend's Python
    url: str             # where to give the server's URL
    token: str           # where to give the server's token


PANEL = Wording(
    select="Select one or more mesh objects, then press Fit NSTR",
    select_meshes="Select mesh objects (convert curves/text with Object > Convert > Mesh)",
    start="Press Start in the NSTR panel",
    reach="Press Start in the NSTR panel, or check the URL and that the server runs",
    python="Set 'Backend Python' in the add-on preferences",
    url="Set it in the add-on preferences",
    token="Set the right token in the add-on preferences",
)

COMMAND_LINE = Wording(
    select="Name mesh objects with --objects NAME (hidden ones too), or pass --input MESHFILE",
    select_meshes="Name mesh objects with --objects (convert curves/text to meshes in the scene first)",
    start="Leave --backend-url out to launch a local backend, or pass a running server's --backend-url",
    reach="Check --backend-url and that the server runs there",
    python="Pass --backend-python",
    url="Pass --backend-url",
    token="Pass the right --token",
)
