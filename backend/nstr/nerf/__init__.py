"""NeRF scenes: datasets (transforms.json), rays, occupancy grid, volume rendering, radiance field, mesh."""
