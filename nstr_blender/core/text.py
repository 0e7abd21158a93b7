"""Word wrapping for panel lines, preference messages and legends (Blender's labels do not wrap)."""

from __future__ import annotations


def wrap(text: str, width: int) -> list[str]:
    """``text`` as lines of at most ``width`` characters, broken between words; a word longer than a
    line (a path, a URL) is cut into pieces, so no label is clipped by Blender."""
    lines, line = [], ""
    words = [w[i:i + width] for w in text.split() for i in range(0, len(w), max(1, width))]
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])
