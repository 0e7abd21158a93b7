"""``run_batch``: find the inputs, skip those already done, run the rest on an engine, write each
result as soon as it arrives, keep summary.csv/md current, and on Ctrl-C cancel what is unfinished
while keeping what finished."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

from nstr.batch import plan, summary
from nstr.batch.engines import LocalEngine, Outcome, RayEngine
from nstr.batch.inputs import BatchInput, discover
from nstr.batch.progress import BatchProgress
from nstr.errors import ConfigError
from nstr.job import JobSpec, MeshFile

ENGINES = ("local", "ray")


@dataclass
class BatchOptions:
    outdir: Path
    fmt: str = "ply"
    engine: str = "local"
    address: str | None = None  # Ray: None starts a local instance, "auto" joins this machine's cluster
    cpus_per_job: float | None = None  # local: torch threads (None: torch's default); Ray: 1 when None
    gpus_per_job: float = 0.0
    max_retries: int = 3
    force: bool = False
    local_cpus: int | None = None  # CPUs of a Ray instance started here (None: all)


@dataclass
class BatchResult:
    rows: list[dict[str, Any]]
    counts: dict[str, int]
    interrupted: bool = False


def run_batch(inputs: list[str] | list[Path], config: dict[str, Any], opts: BatchOptions, *,
              stream: TextIO | None = None, observer: Callable[[dict[str, dict[str, Any]]], None] | None = None
              ) -> BatchResult:
    """Run the batch. ``config`` is a job config (``plan.job_config``). ``observer`` sees each progress
    snapshot (key -> phase, step, node, pid, attempts): tests and tools watch running jobs with it."""
    from nstr.geometry.export import OUTPUT_SUFFIXES
    from nstr.paths import check_writable_output

    stream = stream or sys.stderr
    if opts.engine not in ENGINES:
        raise ConfigError(f"unknown engine '{opts.engine}'", "Use --engine local or --engine ray")
    if opts.fmt not in plan.FORMATS:
        raise ConfigError(f"unknown output format '{opts.fmt}'", "Use ply, glb or npz")
    items = discover(list(inputs))
    outdir = Path(opts.outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the output folder {outdir} ({err.strerror or err})",
                          "Choose a writable folder with -o") from None
    config_sha = plan.config_hash(config)
    rows: dict[str, dict[str, Any]] = {}
    by_key: dict[str, BatchInput] = {it.stem: it for it in items}
    hashes: dict[str, str] = {}
    todo: list[BatchInput] = []
    for it in items:
        out_path = plan.output_path(outdir, it, opts.fmt)
        check_writable_output(out_path, (it.path,), OUTPUT_SUFFIXES, "the mesh")
        if it.path.resolve() == plan.report_path(outdir, it).resolve():
            raise ConfigError(f"the report {plan.report_path(outdir, it)} would overwrite the input", "Use another -o")
        hashes[it.stem] = plan.file_hash(it.path)
        prev = None if opts.force else plan.previous_report(outdir, it, opts.fmt, hashes[it.stem], config_sha)
        if prev is not None:
            b = prev["batch"]
            rows[it.stem] = summary.row(it.path, "skipped", report=prev, output=out_path.name, node=b.get("node", ""),
                                        attempts=b.get("attempts", ""), message="up to date (same input and config)")
        else:
            todo.append(it)
    skipped = [k for k, r in rows.items() if r["state"] == "skipped"]
    if skipped:
        stream.write(f"skipping {len(skipped)} of {len(items)} inputs already done with this config and input "
                     f"({', '.join(skipped)}); --force redoes them\n")
    ordered = lambda: [rows[it.stem] for it in items if it.stem in rows]  # noqa: E731
    summary.write(outdir, ordered())
    bar = BatchProgress(len(items), stream)
    for key in skipped:
        bar.finished[key] = "skipped"

    interrupted = False
    engine: Any = None

    def finish(o: Outcome) -> None:
        it = by_key[o.key]
        if o.state == "done":
            out_path = _write_outputs(outdir, it, opts, o, hashes[it.stem], config_sha)
            rows[o.key] = summary.row(it.path, "done", report=o.report, output=out_path.name, node=o.node,
                                      attempts=o.attempts)
            m = (o.report or {}).get("metrics", {})
            detail = f"{(o.report or {}).get('seconds', 0):.1f} s on {o.node}" + "".join(
                f", {k} {m[k]:.4g}" for k in ("chamfer_l1", "iou") if isinstance(m.get(k), (int, float)))
        else:
            rows[o.key] = summary.row(it.path, o.state, node=o.node, attempts=o.attempts, message=o.message)
            detail = o.message
        if o.attempts > 1:
            detail += f" (after {o.attempts} attempts)"
        bar.finish(o.key, o.state, detail)
        summary.write(outdir, ordered())

    try:
        if todo:
            threads = opts.cpus_per_job
            if opts.engine == "ray":
                cpus = opts.cpus_per_job if opts.cpus_per_job is not None else 1.0
                engine = RayEngine(opts.address, cpus_per_job=cpus, gpus_per_job=opts.gpus_per_job,
                                   max_retries=opts.max_retries, local_cpus=opts.local_cpus)
                threads = cpus
                c = engine.cluster
                stream.write(f"ray: {c['nodes']} node(s), {c['cpus']:g} CPUs, {c['gpus']:g} GPUs; "
                             f"{cpus:g} CPU and {opts.gpus_per_job:g} GPU per job\n")
            else:
                engine = LocalEngine(on_event=lambda: bar.update(engine.snapshot()))
            engine.submit([JobSpec(id=it.stem, task="sdf", config=config,
                                   inputs=MeshFile(it.path.name, it.path.read_bytes()),
                                   threads=int(threads) if threads else None) for it in todo])
            while engine.pending():
                for o in engine.poll(0.5):
                    finish(o)
                snap = engine.snapshot()
                bar.update(snap)
                if observer is not None:
                    observer(snap)
    except KeyboardInterrupt:
        interrupted = True
        if engine is not None:
            for o in engine.cancel_all():
                finish(o)
    finally:
        bar.close()
        if engine is not None:
            engine.close()
    for it in items:  # anything never reached (interrupted before submission)
        rows.setdefault(it.stem, summary.row(it.path, "cancelled", message="cancelled (interrupted)"))
    summary.write(outdir, ordered())
    final = ordered()
    return BatchResult(final, summary.counts(final), interrupted)


def _write_outputs(outdir: Path, it: BatchInput, opts: BatchOptions, o: Outcome, input_sha: str,
                   config_sha: str) -> Path:
    """The mesh first, the report last (the report is what marks the input as done for a rerun)."""
    from nstr.jsonable import write_report
    from nstr.geometry.export import write_mesh

    out_path = plan.output_path(outdir, it, opts.fmt)
    assert o.arrays is not None and o.report is not None
    write_mesh(out_path, o.arrays)
    report = {**o.report, "input": str(it.path), "output": str(out_path),
              "batch": {"input": str(it.path), "input_sha256": input_sha, "config_sha256": config_sha,
                        "format": opts.fmt, "engine": opts.engine, "node": o.node, "attempts": o.attempts,
                        "wall_s": round(o.wall_s, 3)}}
    rep_path = plan.report_path(outdir, it)
    tmp = rep_path.with_name(f".{rep_path.name}.{os.getpid()}.tmp")
    write_report(tmp, report)
    os.replace(tmp, rep_path)
    return out_path


def print_table(result: BatchResult, outdir: Path, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    out.write(summary.to_markdown(result.rows))
    tally = ", ".join(f"{n} {s}" for s, n in result.counts.items())
    out.write(f"{len(result.rows)} inputs: {tally}. Summary: {outdir / 'summary.csv'}, {outdir / 'summary.md'}\n")
    out.flush()


__all__ = ["BatchOptions", "BatchResult", "ENGINES", "print_table", "run_batch"]
