"""Batch fitting: many meshes, one command, on this process or on a Ray cluster.

* :mod:`nstr.batch.inputs`   files, folders and globs -> the list of meshes, one output name each
* :mod:`nstr.batch.plan`     the job config and its hash, input hashes, "already done?" (resume)
* :mod:`nstr.batch.cluster`  Ray: import check, connect/start, the remote fit, the progress board
* :mod:`nstr.batch.engines`  LocalEngine (in-process, one at a time) and RayEngine (the cluster)
* :mod:`nstr.batch.summary`  summary.csv / summary.md and the printed table
* :mod:`nstr.batch.progress` the progress display over jobs, with each running job's phase
* :mod:`nstr.batch.runner`   ``run_batch``: plan, skip what is done, run, write, survive Ctrl-C

Each job is a :class:`nstr.job.JobSpec` (the mesh FILE's bytes as its input) run by
:func:`nstr.job.run_job_spec`, the runner the server's engines use too.

Ray is optional (``pip install 'nstr[ray]'``); nothing here imports it unless the Ray engine is used.
"""
