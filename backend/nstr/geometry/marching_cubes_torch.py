"""Marching cubes in PyTorch, on the volume's own device (CUDA or CPU), vectorised over cells.

The contract is that of :func:`nstr.geometry.extraction.marching_cubes`: the zero level set of a
(X, Y, Z) volume indexed [x, y, z] as (vertices (V, 3) float64 in index coordinates, faces (F, 3)
int64) numpy arrays, faces counter-clockwise seen from outside (normals point out) for a field that
is negative inside, one vertex per edge crossing (the mesh is welded), no degenerate faces, and empty
arrays when the volume has no sign change. Vertices are placed on their grid edge by linear
interpolation of the two values, as scikit-image does; the vertex order differs.

How (no Python loop over cells, no host sync per cell):

1. z-slab by z-slab, so the per-cell work arrays stay near ``slab_cells`` entries whatever the grid:
   each cell's case (bit i set when corner i is inside: value <= 0, where scikit-image puts a value
   of exactly 0 too), its triangles from :data:`TRI_TABLE`, and each triangle corner named by the
   grid edge it lies on, an integer key shared by the (up to four) cells around that edge, in this
   slab or the next;
2. one ``torch.unique`` over all keys: one vertex per edge crossing, the faces' indices;
3. the crossings' positions by linear interpolation along their edges (float64).

A crossing that falls exactly on a grid point (a value of exactly 0 there) is keyed by that point,
so the crossings of the edges around it are one vertex; faces that collapse are dropped, and so are
vertices no face uses any more. Host syncs: two per slab (the active cells, the triangle count) and a
few more for the sign test and the output sizes.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

# Corner i of a cell: offset (dx, dy, dz) from the cell's lowest grid point; bit i of the case.
CORNERS = ((0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1))
# Edge e of a cell: the two corners it joins (bottom face 0-3, top face 4-7, vertical 8-11).
EDGE_CORNERS = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7))

# The 256-case marching-cubes triangulation of Lorensen & Cline (1987) as tabulated by Paul Bourke,
# "Polygonising a scalar field" (1994, table by Cory Gene Bloyd): the table PyMCubes and most
# implementations use, with Bourke's corner and edge numbering (CORNERS, EDGE_CORNERS). Row c lists
# the triangles of case c as triples of cell edges. It splits every ambiguous face the same way
# whichever of the two cells sharing it asks, so neighbouring cells agree and the surface is crack-free
# (tests/test_marching_cubes_torch.py checks it on noise fields full of ambiguous cases).
TRI_TABLE: tuple[tuple[int, ...], ...] = (
    (),  # 0
    (0, 8, 3),  # 1
    (0, 1, 9),  # 2
    (1, 8, 3, 9, 8, 1),  # 3
    (1, 2, 10),  # 4
    (0, 8, 3, 1, 2, 10),  # 5
    (9, 2, 10, 0, 2, 9),  # 6
    (2, 8, 3, 2, 10, 8, 10, 9, 8),  # 7
    (3, 11, 2),  # 8
    (0, 11, 2, 8, 11, 0),  # 9
    (1, 9, 0, 2, 3, 11),  # 10
    (1, 11, 2, 1, 9, 11, 9, 8, 11),  # 11
    (3, 10, 1, 11, 10, 3),  # 12
    (0, 10, 1, 0, 8, 10, 8, 11, 10),  # 13
    (3, 9, 0, 3, 11, 9, 11, 10, 9),  # 14
    (9, 8, 10, 10, 8, 11),  # 15
    (4, 7, 8),  # 16
    (4, 3, 0, 7, 3, 4),  # 17
    (0, 1, 9, 8, 4, 7),  # 18
    (4, 1, 9, 4, 7, 1, 7, 3, 1),  # 19
    (1, 2, 10, 8, 4, 7),  # 20
    (3, 4, 7, 3, 0, 4, 1, 2, 10),  # 21
    (9, 2, 10, 9, 0, 2, 8, 4, 7),  # 22
    (2, 10, 9, 2, 9, 7, 2, 7, 3, 7, 9, 4),  # 23
    (8, 4, 7, 3, 11, 2),  # 24
    (11, 4, 7, 11, 2, 4, 2, 0, 4),  # 25
    (9, 0, 1, 8, 4, 7, 2, 3, 11),  # 26
    (4, 7, 11, 9, 4, 11, 9, 11, 2, 9, 2, 1),  # 27
    (3, 10, 1, 3, 11, 10, 7, 8, 4),  # 28
    (1, 11, 10, 1, 4, 11, 1, 0, 4, 7, 11, 4),  # 29
    (4, 7, 8, 9, 0, 11, 9, 11, 10, 11, 0, 3),  # 30
    (4, 7, 11, 4, 11, 9, 9, 11, 10),  # 31
    (9, 5, 4),  # 32
    (9, 5, 4, 0, 8, 3),  # 33
    (0, 5, 4, 1, 5, 0),  # 34
    (8, 5, 4, 8, 3, 5, 3, 1, 5),  # 35
    (1, 2, 10, 9, 5, 4),  # 36
    (3, 0, 8, 1, 2, 10, 4, 9, 5),  # 37
    (5, 2, 10, 5, 4, 2, 4, 0, 2),  # 38
    (2, 10, 5, 3, 2, 5, 3, 5, 4, 3, 4, 8),  # 39
    (9, 5, 4, 2, 3, 11),  # 40
    (0, 11, 2, 0, 8, 11, 4, 9, 5),  # 41
    (0, 5, 4, 0, 1, 5, 2, 3, 11),  # 42
    (2, 1, 5, 2, 5, 8, 2, 8, 11, 4, 8, 5),  # 43
    (10, 3, 11, 10, 1, 3, 9, 5, 4),  # 44
    (4, 9, 5, 0, 8, 1, 8, 10, 1, 8, 11, 10),  # 45
    (5, 4, 0, 5, 0, 11, 5, 11, 10, 11, 0, 3),  # 46
    (5, 4, 8, 5, 8, 10, 10, 8, 11),  # 47
    (9, 7, 8, 5, 7, 9),  # 48
    (9, 3, 0, 9, 5, 3, 5, 7, 3),  # 49
    (0, 7, 8, 0, 1, 7, 1, 5, 7),  # 50
    (1, 5, 3, 3, 5, 7),  # 51
    (9, 7, 8, 9, 5, 7, 10, 1, 2),  # 52
    (10, 1, 2, 9, 5, 0, 5, 3, 0, 5, 7, 3),  # 53
    (8, 0, 2, 8, 2, 5, 8, 5, 7, 10, 5, 2),  # 54
    (2, 10, 5, 2, 5, 3, 3, 5, 7),  # 55
    (7, 9, 5, 7, 8, 9, 3, 11, 2),  # 56
    (9, 5, 7, 9, 7, 2, 9, 2, 0, 2, 7, 11),  # 57
    (2, 3, 11, 0, 1, 8, 1, 7, 8, 1, 5, 7),  # 58
    (11, 2, 1, 11, 1, 7, 7, 1, 5),  # 59
    (9, 5, 8, 8, 5, 7, 10, 1, 3, 10, 3, 11),  # 60
    (5, 7, 0, 5, 0, 9, 7, 11, 0, 1, 0, 10, 11, 10, 0),  # 61
    (11, 10, 0, 11, 0, 3, 10, 5, 0, 8, 0, 7, 5, 7, 0),  # 62
    (11, 10, 5, 7, 11, 5),  # 63
    (10, 6, 5),  # 64
    (0, 8, 3, 5, 10, 6),  # 65
    (9, 0, 1, 5, 10, 6),  # 66
    (1, 8, 3, 1, 9, 8, 5, 10, 6),  # 67
    (1, 6, 5, 2, 6, 1),  # 68
    (1, 6, 5, 1, 2, 6, 3, 0, 8),  # 69
    (9, 6, 5, 9, 0, 6, 0, 2, 6),  # 70
    (5, 9, 8, 5, 8, 2, 5, 2, 6, 3, 2, 8),  # 71
    (2, 3, 11, 10, 6, 5),  # 72
    (11, 0, 8, 11, 2, 0, 10, 6, 5),  # 73
    (0, 1, 9, 2, 3, 11, 5, 10, 6),  # 74
    (5, 10, 6, 1, 9, 2, 9, 11, 2, 9, 8, 11),  # 75
    (6, 3, 11, 6, 5, 3, 5, 1, 3),  # 76
    (0, 8, 11, 0, 11, 5, 0, 5, 1, 5, 11, 6),  # 77
    (3, 11, 6, 0, 3, 6, 0, 6, 5, 0, 5, 9),  # 78
    (6, 5, 9, 6, 9, 11, 11, 9, 8),  # 79
    (5, 10, 6, 4, 7, 8),  # 80
    (4, 3, 0, 4, 7, 3, 6, 5, 10),  # 81
    (1, 9, 0, 5, 10, 6, 8, 4, 7),  # 82
    (10, 6, 5, 1, 9, 7, 1, 7, 3, 7, 9, 4),  # 83
    (6, 1, 2, 6, 5, 1, 4, 7, 8),  # 84
    (1, 2, 5, 5, 2, 6, 3, 0, 4, 3, 4, 7),  # 85
    (8, 4, 7, 9, 0, 5, 0, 6, 5, 0, 2, 6),  # 86
    (7, 3, 9, 7, 9, 4, 3, 2, 9, 5, 9, 6, 2, 6, 9),  # 87
    (3, 11, 2, 7, 8, 4, 10, 6, 5),  # 88
    (5, 10, 6, 4, 7, 2, 4, 2, 0, 2, 7, 11),  # 89
    (0, 1, 9, 4, 7, 8, 2, 3, 11, 5, 10, 6),  # 90
    (9, 2, 1, 9, 11, 2, 9, 4, 11, 7, 11, 4, 5, 10, 6),  # 91
    (8, 4, 7, 3, 11, 5, 3, 5, 1, 5, 11, 6),  # 92
    (5, 1, 11, 5, 11, 6, 1, 0, 11, 7, 11, 4, 0, 4, 11),  # 93
    (0, 5, 9, 0, 6, 5, 0, 3, 6, 11, 6, 3, 8, 4, 7),  # 94
    (6, 5, 9, 6, 9, 11, 4, 7, 9, 7, 11, 9),  # 95
    (10, 4, 9, 6, 4, 10),  # 96
    (4, 10, 6, 4, 9, 10, 0, 8, 3),  # 97
    (10, 0, 1, 10, 6, 0, 6, 4, 0),  # 98
    (8, 3, 1, 8, 1, 6, 8, 6, 4, 6, 1, 10),  # 99
    (1, 4, 9, 1, 2, 4, 2, 6, 4),  # 100
    (3, 0, 8, 1, 2, 9, 2, 4, 9, 2, 6, 4),  # 101
    (0, 2, 4, 4, 2, 6),  # 102
    (8, 3, 2, 8, 2, 4, 4, 2, 6),  # 103
    (10, 4, 9, 10, 6, 4, 11, 2, 3),  # 104
    (0, 8, 2, 2, 8, 11, 4, 9, 10, 4, 10, 6),  # 105
    (3, 11, 2, 0, 1, 6, 0, 6, 4, 6, 1, 10),  # 106
    (6, 4, 1, 6, 1, 10, 4, 8, 1, 2, 1, 11, 8, 11, 1),  # 107
    (9, 6, 4, 9, 3, 6, 9, 1, 3, 11, 6, 3),  # 108
    (8, 11, 1, 8, 1, 0, 11, 6, 1, 9, 1, 4, 6, 4, 1),  # 109
    (3, 11, 6, 3, 6, 0, 0, 6, 4),  # 110
    (6, 4, 8, 11, 6, 8),  # 111
    (7, 10, 6, 7, 8, 10, 8, 9, 10),  # 112
    (0, 7, 3, 0, 10, 7, 0, 9, 10, 6, 7, 10),  # 113
    (10, 6, 7, 1, 10, 7, 1, 7, 8, 1, 8, 0),  # 114
    (10, 6, 7, 10, 7, 1, 1, 7, 3),  # 115
    (1, 2, 6, 1, 6, 8, 1, 8, 9, 8, 6, 7),  # 116
    (2, 6, 9, 2, 9, 1, 6, 7, 9, 0, 9, 3, 7, 3, 9),  # 117
    (7, 8, 0, 7, 0, 6, 6, 0, 2),  # 118
    (7, 3, 2, 6, 7, 2),  # 119
    (2, 3, 11, 10, 6, 8, 10, 8, 9, 8, 6, 7),  # 120
    (2, 0, 7, 2, 7, 11, 0, 9, 7, 6, 7, 10, 9, 10, 7),  # 121
    (1, 8, 0, 1, 7, 8, 1, 10, 7, 6, 7, 10, 2, 3, 11),  # 122
    (11, 2, 1, 11, 1, 7, 10, 6, 1, 6, 7, 1),  # 123
    (8, 9, 6, 8, 6, 7, 9, 1, 6, 11, 6, 3, 1, 3, 6),  # 124
    (0, 9, 1, 11, 6, 7),  # 125
    (7, 8, 0, 7, 0, 6, 3, 11, 0, 11, 6, 0),  # 126
    (7, 11, 6),  # 127
    (7, 6, 11),  # 128
    (3, 0, 8, 11, 7, 6),  # 129
    (0, 1, 9, 11, 7, 6),  # 130
    (8, 1, 9, 8, 3, 1, 11, 7, 6),  # 131
    (10, 1, 2, 6, 11, 7),  # 132
    (1, 2, 10, 3, 0, 8, 6, 11, 7),  # 133
    (2, 9, 0, 2, 10, 9, 6, 11, 7),  # 134
    (6, 11, 7, 2, 10, 3, 10, 8, 3, 10, 9, 8),  # 135
    (7, 2, 3, 6, 2, 7),  # 136
    (7, 0, 8, 7, 6, 0, 6, 2, 0),  # 137
    (2, 7, 6, 2, 3, 7, 0, 1, 9),  # 138
    (1, 6, 2, 1, 8, 6, 1, 9, 8, 8, 7, 6),  # 139
    (10, 7, 6, 10, 1, 7, 1, 3, 7),  # 140
    (10, 7, 6, 1, 7, 10, 1, 8, 7, 1, 0, 8),  # 141
    (0, 3, 7, 0, 7, 10, 0, 10, 9, 6, 10, 7),  # 142
    (7, 6, 10, 7, 10, 8, 8, 10, 9),  # 143
    (6, 8, 4, 11, 8, 6),  # 144
    (3, 6, 11, 3, 0, 6, 0, 4, 6),  # 145
    (8, 6, 11, 8, 4, 6, 9, 0, 1),  # 146
    (9, 4, 6, 9, 6, 3, 9, 3, 1, 11, 3, 6),  # 147
    (6, 8, 4, 6, 11, 8, 2, 10, 1),  # 148
    (1, 2, 10, 3, 0, 11, 0, 6, 11, 0, 4, 6),  # 149
    (4, 11, 8, 4, 6, 11, 0, 2, 9, 2, 10, 9),  # 150
    (10, 9, 3, 10, 3, 2, 9, 4, 3, 11, 3, 6, 4, 6, 3),  # 151
    (8, 2, 3, 8, 4, 2, 4, 6, 2),  # 152
    (0, 4, 2, 4, 6, 2),  # 153
    (1, 9, 0, 2, 3, 4, 2, 4, 6, 4, 3, 8),  # 154
    (1, 9, 4, 1, 4, 2, 2, 4, 6),  # 155
    (8, 1, 3, 8, 6, 1, 8, 4, 6, 6, 10, 1),  # 156
    (10, 1, 0, 10, 0, 6, 6, 0, 4),  # 157
    (4, 6, 3, 4, 3, 8, 6, 10, 3, 0, 3, 9, 10, 9, 3),  # 158
    (10, 9, 4, 6, 10, 4),  # 159
    (4, 9, 5, 7, 6, 11),  # 160
    (0, 8, 3, 4, 9, 5, 11, 7, 6),  # 161
    (5, 0, 1, 5, 4, 0, 7, 6, 11),  # 162
    (11, 7, 6, 8, 3, 4, 3, 5, 4, 3, 1, 5),  # 163
    (9, 5, 4, 10, 1, 2, 7, 6, 11),  # 164
    (6, 11, 7, 1, 2, 10, 0, 8, 3, 4, 9, 5),  # 165
    (7, 6, 11, 5, 4, 10, 4, 2, 10, 4, 0, 2),  # 166
    (3, 4, 8, 3, 5, 4, 3, 2, 5, 10, 5, 2, 11, 7, 6),  # 167
    (7, 2, 3, 7, 6, 2, 5, 4, 9),  # 168
    (9, 5, 4, 0, 8, 6, 0, 6, 2, 6, 8, 7),  # 169
    (3, 6, 2, 3, 7, 6, 1, 5, 0, 5, 4, 0),  # 170
    (6, 2, 8, 6, 8, 7, 2, 1, 8, 4, 8, 5, 1, 5, 8),  # 171
    (9, 5, 4, 10, 1, 6, 1, 7, 6, 1, 3, 7),  # 172
    (1, 6, 10, 1, 7, 6, 1, 0, 7, 8, 7, 0, 9, 5, 4),  # 173
    (4, 0, 10, 4, 10, 5, 0, 3, 10, 6, 10, 7, 3, 7, 10),  # 174
    (7, 6, 10, 7, 10, 8, 5, 4, 10, 4, 8, 10),  # 175
    (6, 9, 5, 6, 11, 9, 11, 8, 9),  # 176
    (3, 6, 11, 0, 6, 3, 0, 5, 6, 0, 9, 5),  # 177
    (0, 11, 8, 0, 5, 11, 0, 1, 5, 5, 6, 11),  # 178
    (6, 11, 3, 6, 3, 5, 5, 3, 1),  # 179
    (1, 2, 10, 9, 5, 11, 9, 11, 8, 11, 5, 6),  # 180
    (0, 11, 3, 0, 6, 11, 0, 9, 6, 5, 6, 9, 1, 2, 10),  # 181
    (11, 8, 5, 11, 5, 6, 8, 0, 5, 10, 5, 2, 0, 2, 5),  # 182
    (6, 11, 3, 6, 3, 5, 2, 10, 3, 10, 5, 3),  # 183
    (5, 8, 9, 5, 2, 8, 5, 6, 2, 3, 8, 2),  # 184
    (9, 5, 6, 9, 6, 0, 0, 6, 2),  # 185
    (1, 5, 8, 1, 8, 0, 5, 6, 8, 3, 8, 2, 6, 2, 8),  # 186
    (1, 5, 6, 2, 1, 6),  # 187
    (1, 3, 6, 1, 6, 10, 3, 8, 6, 5, 6, 9, 8, 9, 6),  # 188
    (10, 1, 0, 10, 0, 6, 9, 5, 0, 5, 6, 0),  # 189
    (0, 3, 8, 5, 6, 10),  # 190
    (10, 5, 6),  # 191
    (11, 5, 10, 7, 5, 11),  # 192
    (11, 5, 10, 11, 7, 5, 8, 3, 0),  # 193
    (5, 11, 7, 5, 10, 11, 1, 9, 0),  # 194
    (10, 7, 5, 10, 11, 7, 9, 8, 1, 8, 3, 1),  # 195
    (11, 1, 2, 11, 7, 1, 7, 5, 1),  # 196
    (0, 8, 3, 1, 2, 7, 1, 7, 5, 7, 2, 11),  # 197
    (9, 7, 5, 9, 2, 7, 9, 0, 2, 2, 11, 7),  # 198
    (7, 5, 2, 7, 2, 11, 5, 9, 2, 3, 2, 8, 9, 8, 2),  # 199
    (2, 5, 10, 2, 3, 5, 3, 7, 5),  # 200
    (8, 2, 0, 8, 5, 2, 8, 7, 5, 10, 2, 5),  # 201
    (9, 0, 1, 5, 10, 3, 5, 3, 7, 3, 10, 2),  # 202
    (9, 8, 2, 9, 2, 1, 8, 7, 2, 10, 2, 5, 7, 5, 2),  # 203
    (1, 3, 5, 3, 7, 5),  # 204
    (0, 8, 7, 0, 7, 1, 1, 7, 5),  # 205
    (9, 0, 3, 9, 3, 5, 5, 3, 7),  # 206
    (9, 8, 7, 5, 9, 7),  # 207
    (5, 8, 4, 5, 10, 8, 10, 11, 8),  # 208
    (5, 0, 4, 5, 11, 0, 5, 10, 11, 11, 3, 0),  # 209
    (0, 1, 9, 8, 4, 10, 8, 10, 11, 10, 4, 5),  # 210
    (10, 11, 4, 10, 4, 5, 11, 3, 4, 9, 4, 1, 3, 1, 4),  # 211
    (2, 5, 1, 2, 8, 5, 2, 11, 8, 4, 5, 8),  # 212
    (0, 4, 11, 0, 11, 3, 4, 5, 11, 2, 11, 1, 5, 1, 11),  # 213
    (0, 2, 5, 0, 5, 9, 2, 11, 5, 4, 5, 8, 11, 8, 5),  # 214
    (9, 4, 5, 2, 11, 3),  # 215
    (2, 5, 10, 3, 5, 2, 3, 4, 5, 3, 8, 4),  # 216
    (5, 10, 2, 5, 2, 4, 4, 2, 0),  # 217
    (3, 10, 2, 3, 5, 10, 3, 8, 5, 4, 5, 8, 0, 1, 9),  # 218
    (5, 10, 2, 5, 2, 4, 1, 9, 2, 9, 4, 2),  # 219
    (8, 4, 5, 8, 5, 3, 3, 5, 1),  # 220
    (0, 4, 5, 1, 0, 5),  # 221
    (8, 4, 5, 8, 5, 3, 9, 0, 5, 0, 3, 5),  # 222
    (9, 4, 5),  # 223
    (4, 11, 7, 4, 9, 11, 9, 10, 11),  # 224
    (0, 8, 3, 4, 9, 7, 9, 11, 7, 9, 10, 11),  # 225
    (1, 10, 11, 1, 11, 4, 1, 4, 0, 7, 4, 11),  # 226
    (3, 1, 4, 3, 4, 8, 1, 10, 4, 7, 4, 11, 10, 11, 4),  # 227
    (4, 11, 7, 9, 11, 4, 9, 2, 11, 9, 1, 2),  # 228
    (9, 7, 4, 9, 11, 7, 9, 1, 11, 2, 11, 1, 0, 8, 3),  # 229
    (11, 7, 4, 11, 4, 2, 2, 4, 0),  # 230
    (11, 7, 4, 11, 4, 2, 8, 3, 4, 3, 2, 4),  # 231
    (2, 9, 10, 2, 7, 9, 2, 3, 7, 7, 4, 9),  # 232
    (9, 10, 7, 9, 7, 4, 10, 2, 7, 8, 7, 0, 2, 0, 7),  # 233
    (3, 7, 10, 3, 10, 2, 7, 4, 10, 1, 10, 0, 4, 0, 10),  # 234
    (1, 10, 2, 8, 7, 4),  # 235
    (4, 9, 1, 4, 1, 7, 7, 1, 3),  # 236
    (4, 9, 1, 4, 1, 7, 0, 8, 1, 8, 7, 1),  # 237
    (4, 0, 3, 7, 4, 3),  # 238
    (4, 8, 7),  # 239
    (9, 10, 8, 10, 11, 8),  # 240
    (3, 0, 9, 3, 9, 11, 11, 9, 10),  # 241
    (0, 1, 10, 0, 10, 8, 8, 10, 11),  # 242
    (3, 1, 10, 11, 3, 10),  # 243
    (1, 2, 11, 1, 11, 9, 9, 11, 8),  # 244
    (3, 0, 9, 3, 9, 11, 1, 2, 9, 2, 11, 9),  # 245
    (0, 2, 11, 8, 0, 11),  # 246
    (3, 2, 11),  # 247
    (2, 3, 8, 2, 8, 10, 10, 8, 9),  # 248
    (9, 10, 2, 0, 9, 2),  # 249
    (2, 3, 8, 2, 8, 10, 0, 1, 8, 1, 10, 8),  # 250
    (1, 10, 2),  # 251
    (1, 3, 8, 9, 1, 8),  # 252
    (0, 9, 1),  # 253
    (0, 3, 8),  # 254
    (),  # 255
)


@functools.lru_cache(maxsize=8)
def _tables(device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """On ``device``: triangles per case (256,), their edges (256, 5, 3), and per cell edge its axis
    and the offset of its lower grid point as a (dx, dy, dz) triple (12,), (12, 3)."""
    tri = torch.zeros(256, 5, 3, dtype=torch.long)
    count = torch.zeros(256, dtype=torch.long)
    for case, row in enumerate(TRI_TABLE):
        count[case] = len(row) // 3
        if row:
            tri[case, :len(row) // 3] = torch.tensor(row).view(-1, 3)
    lo = torch.tensor([[min(CORNERS[a][d], CORNERS[b][d]) for d in range(3)] for a, b in EDGE_CORNERS])
    axis = torch.tensor([next(d for d in range(3) if CORNERS[a][d] != CORNERS[b][d]) for a, b in EDGE_CORNERS])
    return count.to(device), tri.to(device), axis.to(device), lo.to(device)


def marching_cubes_torch(volume: Tensor | np.ndarray, slab_cells: int = 1 << 24) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3) float64 in index coordinates, outward faces (F, 3) int64) of the zero level
    set of ``volume`` (negative inside), computed on the volume's device; empty arrays when the
    volume has no sign change. ``slab_cells`` bounds the cells handled at once."""
    vol = torch.as_tensor(volume)
    empty = np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    if vol.ndim != 3 or min(vol.shape) < 2:
        raise ValueError(f"marching cubes needs a 3D volume of at least 2 x 2 x 2 points, not {tuple(vol.shape)}")
    lo, hi = torch.stack(torch.aminmax(vol)).tolist()
    if not lo < 0 < hi:
        return empty
    dev = vol.device
    X, Y, Z = vol.shape
    n = X * Y * Z
    flat = vol.reshape(-1)
    count, tri, axis, off = _tables(dev)
    stride = torch.tensor([Y * Z, Z, 1], device=dev)
    off_lin = off @ stride  # (12,) lower grid point of each cell edge, as a linear offset
    depth = max(1, min(Z - 1, slab_cells // ((X - 1) * (Y - 1))))
    keys = []
    for z0 in range(0, Z - 1, depth):
        z1 = min(z0 + depth, Z - 1)  # cells z0 .. z1 - 1, grid points z0 .. z1
        inside = vol[:, :, z0:z1 + 1] <= 0
        case = torch.zeros((X - 1, Y - 1, z1 - z0), dtype=torch.uint8, device=dev)
        for bit, (dx, dy, dz) in enumerate(CORNERS):
            case |= inside[dx:X - 1 + dx, dy:Y - 1 + dy, dz:z1 - z0 + dz].to(torch.uint8) << bit
        cells = ((case != 0) & (case != 255)).nonzero()  # (m, 3) sync: the active cells
        if not len(cells):
            continue
        c = case[cells[:, 0], cells[:, 1], cells[:, 2]].long()
        per_cell = count[c]
        t = int(per_cell.sum())  # sync: the triangle count
        first = torch.cumsum(per_cell, 0) - per_cell
        owner = torch.repeat_interleave(torch.arange(len(c), device=dev), per_cell, output_size=t)
        k = torch.arange(t, device=dev) - first[owner]
        edges = tri[c[owner], k]  # (t, 3) cell edges of each triangle corner
        cell_lin = (cells[:, 0] * Y + cells[:, 1]) * Z + cells[:, 2] + z0
        a = cell_lin[owner, None] + off_lin[edges]  # lower grid point of each corner's edge
        b = a + stride[axis[edges]]
        key = axis[edges] * n + a
        # a crossing exactly on a grid point (value 0 there) is that point: 3 n + its index
        key = torch.where(flat[a] == 0, 3 * n + a, torch.where(flat[b] == 0, 3 * n + b, key))
        keys.append(key)
    if not keys:
        return empty
    uniq, inverse = torch.unique(torch.cat(keys), return_inverse=True)
    faces = inverse.view(-1, 3)[:, [0, 2, 1]]  # the table winds inward with these corners: reverse
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    on_point = uniq >= 3 * n
    ax = torch.where(on_point, 0, uniq // n)
    a = torch.where(on_point, uniq - 3 * n, uniq % n)
    b = torch.where(on_point, a, a + stride[ax])
    ftype = torch.float64 if dev.type != "mps" else torch.float32
    va, vb = flat[a].to(ftype), flat[b].to(ftype)
    frac = torch.where(on_point, torch.zeros_like(va), va / (va - vb))
    verts = torch.stack([a // (Y * Z), (a // Z) % Y, a % Z], 1).to(ftype)
    verts[torch.arange(len(uniq), device=dev), ax] += frac
    used = torch.zeros(len(uniq), dtype=torch.bool, device=dev)
    used[faces.reshape(-1)] = True
    if not bool(used.all()):  # vertices only collapsed faces used
        remap = torch.cumsum(used, 0) - 1
        verts, faces = verts[used], remap[faces]
    return verts.cpu().numpy().astype(np.float64), faces.cpu().numpy().astype(np.int64)
