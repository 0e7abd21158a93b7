#!/usr/bin/env python
"""CPU speed benchmark, everything side by side in one run:

1. the grid encoding (``nstr.fields.encoding.MultiresGrid``) against the per-level reference
   (``nstr.fields.encoding_reference``): forward + backward, without and with the Jacobian, and
   top-level op counts, at 4 / 8 / 16 levels (N = 65,536 points, table 2^19);
2. the default SDF preset's training step (NSTR): today's (the per-level reference grid and Adam's
   unfused per-tensor loop, as shipped) against the shipped step (vectorised grid, fused Adam);
3. step rates of every model at matched parameters (200k, batch 16,384) on the same SDF step;
4. a profile summary of one NSTR step with each encoding (top ops, op count, share of ``aten::fill_``);
5. ``torch.compile`` against eager for field queries (the extraction's work) at the quick preset:
   queries/s and the one-off compile time, to decide where compiling pays (``--no-compile`` skips it).

    OMP_NUM_THREADS=1 flock /tmp/nstr-bench.lock .venv/bin/python scripts/bench_speed.py --out bench/speed

Writes OUT/speed.json and OUT/speed.md. ``--tiny`` shrinks everything (a smoke run, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

MODELS = ("nstr", "siren", "ffn", "hashgrid")
MODEL_BUDGET, MODEL_BATCH = 200_000, 16384  # the every-model table: matched parameters, same SDF step


def _best(fn: Callable[[], None], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _best_pair(a: Callable[[], None], b: Callable[[], None], repeats: int) -> tuple[float, float]:
    """Best times of ``a`` and ``b`` measured alternately, so load from other processes hits both alike."""
    a()
    b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, out in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return min(ta), min(tb)


def bench_encoding(levels: list[int], n: int, table: int, repeats: int) -> list[dict[str, Any]]:
    from nstr.fields.encoding import MultiresGrid
    from nstr.fields.encoding_reference import MultiresGridReference

    rows = []
    x = torch.rand(n, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for L in levels:
        new = MultiresGrid(3, L, 2, 16, 2048, table)
        ref = MultiresGridReference(3, L, 2, 16, 2048, table)
        ref.load_state_dict(new.state_dict())
        row: dict[str, Any] = {"levels": L}
        for jac in (False, True):
            steps = {}
            for name, grid in (("reference", ref), ("vectorised", new)):
                def step(grid=grid, jac=jac) -> None:
                    f, j = grid(x, with_jacobian=jac)
                    loss = f.square().sum() + (j.square().sum() if jac else 0.0)
                    loss.backward()
                    grid.table.grad = None

                steps[name] = step
                row[f"{name}_{'jac' if jac else 'plain'}_ops"] = _profile_step(step)["top_level_ops"]
            t_ref, t_new = _best_pair(steps["reference"], steps["vectorised"], repeats)
            row[f"reference_{'jac' if jac else 'plain'}_s"] = round(t_ref, 4)
            row[f"vectorised_{'jac' if jac else 'plain'}_s"] = round(t_new, 4)
        row["speedup_plain"] = round(row["reference_plain_s"] / row["vectorised_plain_s"], 2)
        row["speedup_jac"] = round(row["reference_jac_s"] / row["vectorised_jac_s"], 2)
        rows.append(row)
        print(f"encoding L={L}: {row}", flush=True)
    return rows


class _Samples:
    """Sphere SDF samples shaped like nstr.geometry.sampling.SampleSet (surface first, then near and uniform)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        r = 0.6
        n_s = n // 4
        dirs = rng.normal(size=(n, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        surface = dirs[:n_s] * r
        near = dirs[n_s:n_s + n // 2] * r + rng.normal(0, 0.02, (n // 2, 3))
        uniform = rng.uniform(-1, 1, (n - n_s - n // 2, 3))
        self.points = np.concatenate([surface, near, uniform]).astype(np.float32)
        self.sdf = np.clip(np.linalg.norm(self.points, axis=1) - r, -0.1, 0.1).astype(np.float32)
        self.normals = np.zeros_like(self.points)
        self.normals[:n_s] = dirs[:n_s]
        self.n_surface = n_s


def _sdf_step(model: str, params: int | None, tiny: bool, reference: bool = False, batch: int | None = None,
              extra: dict[str, Any] | None = None):
    """(field, one-step closure) for the default SDF preset's objective and optimiser (``extra``: more
    config overrides, e.g. banded NSTR's frame)."""
    from nstr.fields import build_field
    from nstr.fields.encoding_reference import MultiresGridReference
    from nstr.tasks.sdf import _objective, sdf_config
    from nstr.train.loop import make_optimizer

    overrides: dict[str, Any] = {"model": model}
    if params:
        overrides["params"] = params
    if tiny:
        overrides.update({"batch_size": 2048, "field.grid_table_size": 2**12, "task.samples": 20_000})
    if batch:
        overrides["batch_size"] = batch
    overrides.update(extra or {})
    cfg = sdf_config("default", overrides)
    torch.manual_seed(0)
    field = build_field(cfg.field, in_dim=3, out_dim=1)
    if reference and hasattr(field, "grid"):
        g = field.grid
        ref = MultiresGridReference(3, g.levels, g.features, cfg.field.grid_base_res, cfg.field.grid_max_res,
                                    cfg.field.grid_table_size)
        ref.load_state_dict(g.state_dict())
        field.grid = ref
    samples = _Samples(cfg.task.samples)
    hold = (np.zeros((10, 3), np.float32), np.zeros(10, bool))
    objective = _objective(samples, cfg.task, torch.device("cpu"), cfg.train.batch_size, hold)
    if reference:  # today's step as it shipped: the per-level grid and Adam's unfused per-tensor loop
        optimizer = torch.optim.Adam(field.param_groups(field.default_lr), betas=(0.9, 0.99), eps=field.adam_eps,
                                     foreach=False)
    else:
        optimizer = make_optimizer(field, field.default_lr)
    gen = torch.Generator()
    state = {"step": 0}

    def step() -> None:  # what nstr.train.loop.train does per step, without the logging
        gen.manual_seed(state["step"])
        batch = objective.sample(state["step"], gen)
        loss, terms = objective.loss(field, batch, cfg.train.pde_fraction)
        total = loss.float()
        if "pde" in terms and cfg.train.lambda_pde > 0:
            total = total + cfg.train.lambda_pde * terms["pde"].float()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        state["step"] += 1

    return field, step, cfg


def _profile_step(step: Callable[[], None]) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    ops = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in ops) or 1.0
    top = sorted(ops, key=lambda e: -e.self_cpu_time_total)[:8]
    top_level = sum(1 for e in prof.events() if e.name.startswith("aten::")
                    and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")))
    fill = sum(e.self_cpu_time_total for e in ops if e.key in ("aten::fill_", "aten::zero_"))
    return {"top_level_ops": top_level, "fill_share": round(fill / total, 3),
            "top": [(e.key, round(e.self_cpu_time_total / total, 3), e.count) for e in top]}


def bench_sdf(tiny: bool, steps: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    field, step_new, cfg = _sdf_step("nstr", None, tiny)
    params = int(field.n_params)
    _, step_ref, _ = _sdf_step("nstr", None, tiny, reference=True)
    t_ref, t_new = _best_pair(step_ref, step_new, steps)
    out["nstr_default"] = {"params": params, "batch": cfg.train.batch_size, "reference_s_per_step": round(t_ref, 4),
                           "vectorised_s_per_step": round(t_new, 4), "reference_steps_per_s": round(1 / t_ref, 3),
                           "vectorised_steps_per_s": round(1 / t_new, 3), "speedup": round(t_ref / t_new, 2)}
    print(f"sdf default step: {out['nstr_default']}", flush=True)
    out["profile"] = {"reference": _profile_step(step_ref), "vectorised": _profile_step(step_new)}
    # Every model at one smaller budget: at NSTR's default 3.6M parameters SIREN alone takes minutes per step here.
    models = []
    budget, batch = (20_000, 1024) if tiny else (MODEL_BUDGET, MODEL_BATCH)
    for model in MODELS:
        f, step, _ = _sdf_step(model, budget, tiny, batch=batch)
        t = _best(step, steps)
        models.append({"model": model, "params": int(f.n_params), "batch": batch, "s_per_step": round(t, 4),
                       "steps_per_s": round(1 / t, 3)})
        print(f"model {model}: {models[-1]}", flush=True)
    out["models"] = models
    return out


def bench_compile(tiny: bool, repeats: int) -> list[dict[str, Any]]:
    """Eager against ``torch.compile`` for inference queries, with the compile time it costs first."""
    from nstr.fields import build_field
    from nstr.tasks.sdf import sdf_config

    rows = []
    n = 4096 if tiny else 65536
    x = torch.rand(n, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for model in ("nstr", "hashgrid"):
        cfg = sdf_config("quick", {"model": model})
        torch.manual_seed(0)
        field = build_field(cfg.field, in_dim=3, out_dim=1).eval()
        with torch.no_grad():
            t_eager = _best(lambda: field(x), repeats)
            t0 = time.perf_counter()
            compiled = torch.compile(field, dynamic=False)
            compiled(x)
            t_compile = time.perf_counter() - t0
            t_comp = _best(lambda: compiled(x), repeats)
            gap = float((compiled(x) - field(x)).abs().max())
        row = {"model": model, "points": n, "eager_qps": round(n / t_eager), "compiled_qps": round(n / t_comp),
               "speedup": round(t_eager / t_comp, 2), "compile_s": round(t_compile, 1), "max_abs_diff": gap,
               "break_even_points": (round(t_compile / (t_eager / n - t_comp / n)) if t_comp < t_eager else None)}
        rows.append(row)
        print(f"compile {model}: {row}", flush=True)
    return rows


def to_markdown(result: dict[str, Any]) -> str:
    lines = [f"# CPU speed ({result['machine']}, torch {result['torch']}, threads {result['threads']}, "
             f"load before/after {result['load_before']} / {result['load_after']})", "",
             "## Grid encoding, fwd+bwd (N = {n}, table {t})".format(n=result["n"], t=result["table"]), "",
             "| levels | reference | vectorised | x | reference, Jacobian | vectorised, Jacobian | x | ops ref / vec "
             "(Jacobian) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["encoding"]:
        lines.append(f"| {r['levels']} | {r['reference_plain_s']} s | {r['vectorised_plain_s']} s | "
                     f"{r['speedup_plain']} | {r['reference_jac_s']} s | {r['vectorised_jac_s']} s | "
                     f"{r['speedup_jac']} | {r['reference_jac_ops']} / {r['vectorised_jac_ops']} |")
    s = result["sdf"]["nstr_default"]
    lines += ["", f"## Default SDF preset, NSTR training step ({s['params']} params, batch {s['batch']})", "",
              "| step | s/step | steps/s |", "| --- | --- | --- |",
              f"| today's (reference grid, unfused Adam) | {s['reference_s_per_step']} | {s['reference_steps_per_s']} |",
              f"| shipped (vectorised grid, fused Adam) | {s['vectorised_s_per_step']} | {s['vectorised_steps_per_s']} |",
              f"| speed-up | {s['speedup']}x | |", "",
              "## Every model at matched parameters (the default SDF step, batch {b})".format(b=result["sdf"]["models"][0].get("batch")), "",
              "| model | params | s/step | steps/s |", "| --- | --- | --- | --- |"]
    lines += [f"| {m['model']} | {m['params']} | {m['s_per_step']} | {m['steps_per_s']} |" for m in result["sdf"]["models"]]
    lines += ["", "## Profile of one NSTR step", ""]
    for name, p in result["sdf"]["profile"].items():
        top = ", ".join(f"{k} {100 * v:.0f}% ({c})" for k, v, c in p["top"][:6])
        lines.append(f"- {name}: {p['top_level_ops']} top-level ops, fill_/zero_ {100 * p['fill_share']:.0f}% "
                     f"of op time; top: {top}")
    if result.get("compile"):
        lines += ["", "## torch.compile against eager, field queries at the quick preset", "",
                  "| model | eager queries/s | compiled queries/s | x | compile time | queries to break even |",
                  "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['model']} | {r['eager_qps']} | {r['compiled_qps']} | {r['speedup']} | {r['compile_s']} s | "
                  f"{r['break_even_points'] or 'never'} |" for r in result["compile"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench/speed"))
    ap.add_argument("--tiny", action="store_true", help="a smoke run with small sizes (not a measurement)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile section (it compiles ~30 s)")
    args = ap.parse_args()
    torch.manual_seed(0)
    n, table, levels = (4096, 2**12, [4, 8]) if args.tiny else (65536, 2**19, [4, 8, 16])
    result: dict[str, Any] = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                              "threads": torch.get_num_threads(), "load_before": os.getloadavg()[0],
                              "n": n, "table": table, "tiny": args.tiny}
    result["encoding"] = bench_encoding(levels, n, table, 1 if args.tiny else args.repeats)
    result["sdf"] = bench_sdf(args.tiny, 1 if args.tiny else args.repeats)
    result["compile"] = [] if args.no_compile else bench_compile(args.tiny, 1 if args.tiny else args.repeats)
    result["load_after"] = os.getloadavg()[0]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps(result, indent=2))
    md = to_markdown(result)
    (args.out / "speed.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
