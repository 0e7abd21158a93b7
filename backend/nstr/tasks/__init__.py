"""Tasks: one module per kind of signal. ``JOB_TASKS`` lists those the server runs as jobs."""

JOB_TASKS: dict[str, str] = {"sdf": "nstr.tasks.sdf", "nerf": "nstr.tasks.nerf"}
