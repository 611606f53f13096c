"""Speed: the flow at the machine's limit, samplers per second, time to accuracy, scale-out (issue 23).

One script, one result file (``results/speed/full.json``, ``--quick``: ``results/speed/quick.json``), many
sections. Each section is a function returning ``(settings, figures, headline)``; running one section merges its part
into the file and keeps every other section's (``--section NAME``, repeatable; the default runs every section not
marked long).
Ratios are measured side by side in one process, on one thread unless a section says otherwise.

    OMP_NUM_THREADS=1 python benchmarks/speed.py --list
    OMP_NUM_THREADS=1 python benchmarks/speed.py --section flops [--quick]

Sections (headline keys):

=========================  ===========================================================================================
``flops``                  ``flow_flop_fraction_of_matmul``: FLOP rate of the flow's sample-and-score and training
                           step against a flow-sized matmul (65536x32 @ 32x32) on the same thread
``nuts_cost``              (no headline) one potential value-and-gradient at L=16: latent (Pyro-traced NeuTra model
                           against the direct ``potential_fn``, batch 1 and 16/64/256 chains per call), physical
                           (traced, direct), and Pyro NUTS's own cost per gradient
``nuts`` (long)            ``L16_ess_per_second_ratio_latent_nuts_vs_physical_nuts``,
                           ``L16_ess_per_second_ratio_latent_hmc_walkers_vs_physical_nuts``: ESS(m2) per second of
                           latent NUTS and the latent walkers over the better of physical NUTS with diagonal or dense
                           mass, direct potentials, one trained flow (``--flow-dir`` keeps it)
``ddp``                    ``ddp_weak_scaling_2proc``: the stored headline of ``benchmarks/distributed.py`` (weak
                           scaling, 1 process x 1 thread vs 2 x 1, 200 steps, three repeats, machine load recorded)
``canonical``              ``canonical_linear_step_ratio_vs_torch``: step time of ``fit_variational`` on the linear
                           canonical flow (n=32, batch 200, float32) over the bare PyTorch loop of the same model,
                           loss and optimizer (interleaved repeats; float64 too; their F_q trajectories compared)
=========================  ===========================================================================================

Adding a section: write ``def my_section(args) -> SectionResult`` and decorate it with ``@section("name", help)``;
a long section (``long=True``) runs only when named and may call :func:`publish` as it goes, so that a partial run
still leaves its figures in the file.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from _common import machine, median_time, read_result, result_path, table, write_result

SCRIPT = "speed"
SectionResult = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]  # settings, figures, headline
SECTIONS: dict[str, tuple[Callable[[argparse.Namespace], SectionResult], str, bool]] = {}  # name -> fn, help, long


Section = Callable[[argparse.Namespace], SectionResult]


def section(name: str, help: str, long: bool = False) -> Callable[[Section], Section]:
    """Register a section under ``name`` (``long``: only run when named on the command line)."""

    def register(fn: Section) -> Section:
        SECTIONS[name] = (fn, help, long)
        return fn

    return register


def result_name(quick: bool) -> str:
    """``speed`` or ``speed_quick``."""
    return "speed_quick" if quick else "speed"


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """An exclusive lock on the result file's ``.lock`` sibling (sections of parallel runs merge one at a time)."""
    lock = result_path(name, SCRIPT).with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def publish(name: str, sec: str, settings: dict[str, Any], figures: dict[str, Any], headline: dict[str, Any]) -> None:
    """Merge one section's settings, figures and headline into the result ``name``, keeping every other section's."""
    with _locked(name):
        path = result_path(name, SCRIPT)
        old = read_result(SCRIPT, name) if path.is_file() else {}
        all_settings = dict(old.get("settings", {}))
        all_figures = dict(old.get("figures", {}))
        all_headline = dict(old.get("headline", {}))
        all_settings[sec] = {**settings, "machine": machine(), "date": time.strftime("%Y-%m-%dT%H:%M:%S")}
        all_figures[sec] = figures
        all_headline.update(headline)
        write_result(name, all_settings, all_figures, all_headline, script=SCRIPT)


# --- sections ---------------------------------------------------------------------------------------------------


def matmul_rate(repeats: int = 15) -> tuple[float, float]:
    """(GFLOP/s, seconds) of the flow-sized matmul 65536x32 @ 32x32 in float32 on this thread."""
    a, b = torch.randn(65536, 32), torch.randn(32, 32)
    t, _ = median_time(lambda: a @ b, repeats, warmup=3)
    return 2 * 65536 * 32 * 32 / t / 1e9, t


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` (``torch.utils.flop_counter``: matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


FLOW_CASES = {  # the two flows of the issue: the default flow at L=16, and the free-energy recipe's flow at L=8
    16: {"batch": 1024, "flow_kw": {}},
    8: {"batch": 128, "flow_kw": {"repeats": 3, "activation": "silu"}},
}


def _flow_case(L: int, quick: bool) -> tuple[Any, int]:
    """A recipe distiller for the flow case ``L`` and its batch (``quick``: batch / 4)."""
    from recipes import distiller

    case = FLOW_CASES[L]
    batch = case["batch"] // 4 if quick else case["batch"]
    return distiller(L, steps=10**6, batch_size=batch, **case["flow_kw"]), batch


def _sample_and_score(d: Any, batch: int) -> Callable[[], torch.Tensor]:
    r"""z ~ N(0, I), x = g(z), ln q(x) and beta E(x) (no gradient): one step of flow sampling with its weights."""
    L = d.flow.L

    @torch.no_grad()
    def run() -> torch.Tensor:
        z = torch.randn(batch, L, L)
        x, ldj = d.flow.forward_and_log_det(z)
        return -0.5 * z.square().sum((-2, -1)) - ldj + d.energy.action(x)

    return run


def flow_timings(L: int, quick: bool) -> dict[str, Any]:
    """Eager and fast path of one flow side by side, interleaved (eager, fast, eager, fast...), same process:
    sample-and-score and the recipe's training step (Z2 mixture, path gradient, Adam), medians; plus the compile
    time, the largest difference of the two paths on the same z, and the FLOPs of one call (eager path)."""
    from pyro_nrg.transforms import set_fast_path

    d, batch = _flow_case(L, quick)
    ss = _sample_and_score(d, batch)
    z = torch.randn(8, L, L)
    set_fast_path(d.flow, False)
    n_ss, n_step = count_flops(ss), count_flops(d.train_step)  # (a training step: before the comparison below)
    with torch.no_grad():
        x0, l0 = d.flow.forward_and_log_det(z)
    set_fast_path(d.flow, True)
    t0 = time.perf_counter()
    with torch.no_grad():  # same parameters, same z: the two paths' numbers
        x1, l1 = d.flow.forward_and_log_det(z)
    ss()
    d.train_step()
    d.train_step()
    compile_s = time.perf_counter() - t0
    times: dict[str, list[float]] = {"eager_ss": [], "fast_ss": [], "eager_step": [], "fast_step": [],
                                     "matmul": []}
    rounds = 2 if quick else 4
    for _ in range(rounds):  # the reference matmul in every round too: its rate under the same load
        times["matmul"].append(matmul_rate(5)[1])
        for mode in ("eager", "fast"):
            set_fast_path(d.flow, mode == "fast")
            times[f"{mode}_ss"] += median_time(ss, 3 if quick else 5, warmup=1)[1]
            times[f"{mode}_step"] += median_time(d.train_step, 2 if quick else 4, warmup=1)[1]
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"L": L, "batch": batch, "flow": d.flow.config, "compile_and_first_steps_s": compile_s,
            "max_abs_diff_x": float((x1 - x0).abs().max()), "max_abs_diff_logdet": float((l1 - l0).abs().max()),
            "flops_sample_score": n_ss, "flops_train_step": n_step, "seconds": med, "all_seconds": times,
            "speedup_sample_score": med["eager_ss"] / med["fast_ss"],
            "speedup_train_step": med["eager_step"] / med["fast_step"],
            "gflops": {k: (n_ss if k.endswith("ss") else n_step) / v / 1e9 for k, v in med.items() if k != "matmul"},
            "matmul_gflops": 2 * 65536 * 32 * 32 / med["matmul"] / 1e9}


def _print_flow(r: dict[str, Any], rate_mm: float | None = None) -> None:
    rows = []
    for what in ("ss", "step"):
        for mode in ("eager", "fast"):
            k = f"{mode}_{what}"
            g = r["gflops"][k]
            rows.append((("sample+score" if what == "ss" else "training step"), mode, f"{r['seconds'][k] * 1e3:.1f}",
                         f"{g:.1f}", f"{g / rate_mm:.2f}" if rate_mm else "-"))
    print(f"L={r['L']} batch {r['batch']} ({r['flow']['repeats']} repeats, {r['flow']['activation']}): compile + first "
          f"steps {r['compile_and_first_steps_s']:.1f} s; fast - eager: |dx| {r['max_abs_diff_x']:.1e}, "
          f"|d logdet| {r['max_abs_diff_logdet']:.1e}")
    print(table(rows, ("what", "path", "ms", "GFLOP/s", "of matmul")))
    print(f"speed-up fast / eager: sample+score {r['speedup_sample_score']:.2f}x, "
          f"training step {r['speedup_train_step']:.2f}x")


def _speedup_headline(r: dict[str, Any]) -> dict[str, float]:
    L = r["L"]
    return {f"flow_speedup_L{L}": min(r["speedup_sample_score"], r["speedup_train_step"]),
            f"flow_speedup_L{L}_sample_score": r["speedup_sample_score"],
            f"flow_speedup_L{L}_train_step": r["speedup_train_step"]}


def _speedup_section(L: int) -> Section:
    def run(args: argparse.Namespace) -> SectionResult:
        r = flow_timings(L, args.quick)
        _print_flow(r)
        return {"L": L, "batch": r["batch"], "threads": torch.get_num_threads()}, r, _speedup_headline(r)

    return run


section("flow_speedup_L8", "fast vs eager path at L=8 (repeats=3, SiLU, batch 128): sample+score and training step")(
    _speedup_section(8))
section("flow_speedup_L16", "fast vs eager path at L=16 (default flow, batch 1024): sample+score and training step")(
    _speedup_section(16))


@section("flops", "FLOP rate of the flow (eager and fast path) against a flow-sized matmul, same thread; also "
                  "the flow_speedup_L8/L16 keys (the same timings)")
def flops_section(args: argparse.Namespace) -> SectionResult:
    rate_mm, t_mm = matmul_rate()
    out: dict[str, Any] = {"matmul_gflops": rate_mm, "matmul_seconds": t_mm}
    fractions, speedups = {}, {}
    for L in (16, 8):
        r = flow_timings(L, args.quick)
        _print_flow(r, r["matmul_gflops"])
        print(f"matmul 65536x32 @ 32x32 interleaved with these timings: {r['matmul_gflops']:.1f} GFLOP/s")
        out[f"L{L}"] = r
        speedups.update(_speedup_headline(r))
        fractions.update({f"L{L}_{k}": v / r["matmul_gflops"] for k, v in r["gflops"].items()})
    rate_mm_after, _ = matmul_rate()
    out["matmul_gflops_after"] = rate_mm_after
    print(f"matmul 65536x32 @ 32x32: {rate_mm:.1f} GFLOP/s before, {rate_mm_after:.1f} after")
    out["fractions"] = fractions
    return {"threads": torch.get_num_threads(), "flops": "torch.utils.flop_counter on the eager path (matmuls)"}, \
        out, {"flow_flop_fraction_of_matmul": fractions["L16_fast_step"],
              "flow_flop_fraction_of_matmul_all": fractions, **speedups}


# --- time to accuracy ----------------------------------------------------------------------------------------------

TTA_CASES = {  # the budgets; flow and batch: docs/physics.md, "Speed"
    "fq_L8_15min": {"L": 8, "budget": 900.0, "batch": 128, "key": "L8_fq_rel_err_15min"},
    "fq_L16_30min": {"L": 16, "budget": 1800.0, "batch": 128, "key": "L16_fq_rel_err_30min"},
    "fq_L32_60min": {"L": 32, "budget": 3600.0, "batch": 128, "key": "L32_fq_rel_err_60min"},
}
TTA_FLOW = {"repeats": 3, "activation": "silu"}


def _eval_times(budget: float) -> list[float]:
    """Training seconds at which the curve is evaluated: 30 s, doubling, then every budget/15."""
    pts, t = [], 30.0
    while t < budget / 15:
        pts.append(t)
        t *= 2
    step = budget / 15
    pts += [step * k for k in range(1, 16)]
    return sorted(set(pts))


def time_to_accuracy(args: argparse.Namespace, name: str) -> SectionResult:
    """Train the recipe for the wall-time budget (schedule on elapsed time), evaluating F_q at fixed training times
    (clock paused while evaluating and checkpointing); resumable from ``--run-dir``; publishes as it goes."""
    from recipes import distiller

    from pyro_nrg.infer import TimeBudget
    from pyro_nrg.transforms import set_fast_path

    case = TTA_CASES[name]
    L, budget, batch = case["L"], case["budget"], case["batch"]
    n_eval, n_final = 4096, 16384
    if args.quick:
        L, budget, batch, n_eval, n_final = min(L, 8), 20.0, 64, 512, 1024
    run_dir = Path(args.run_dir) / (name + ("_quick" if args.quick else ""))
    run_dir.mkdir(parents=True, exist_ok=True)
    d = distiller(L, steps=10**6, batch_size=batch, **TTA_FLOW)
    set_fast_path(d.flow, not args.eager)
    curve_path, ckpt = run_dir / "curve.json", run_dir / "checkpoint.pt"
    curve: dict[str, Any] = {"points": [], "train_seconds": 0.0}
    if curve_path.is_file() and ckpt.is_file():
        curve = json.loads(curve_path.read_text())
        d.load_checkpoint(ckpt)
        print(f"resumed at step {d.step}, {curve['train_seconds']:.0f} s of training", flush=True)
    exact_f = -d.energy.temperature * d.energy.log_z()
    settings = {"L": L, "budget_s": budget, "batch": batch, "flow": d.flow.config, "fast": not args.eager,
                "lr": d.config.lr, "n_eval": n_eval, "n_final": n_final, "exact_F": exact_f,
                "clock": "training time only: evaluations and checkpoints pause it; compile time counts"}
    clock = TimeBudget(budget).start()
    assert clock.t0 is not None
    clock.t0 -= curve["train_seconds"]
    due = [t for t in _eval_times(budget) if t > curve["train_seconds"]]

    def figures() -> dict[str, Any]:
        return {"curve": curve["points"], "final": curve.get("final"), "steps": d.step}

    def evaluate(distiller_: Any, record: dict[str, float]) -> bool:
        if not due or clock.elapsed < due[0]:
            return False
        while due and clock.elapsed >= due[0]:
            due.pop(0)
        t_train = clock.elapsed
        t0 = time.perf_counter()
        est = d.estimate(n_eval, float64=False)
        curve["points"].append({"train_seconds": t_train, "step": d.step, "f_q": est.f_q, "f_q_err": est.f_q_err,
                                "f_q_rel_err": est.f_q_rel_err, "f_q_err_rel": est.f_q_err / abs(exact_f),
                                "lr": record["lr"]})
        curve["train_seconds"] = t_train
        d.save_checkpoint(ckpt)
        curve_path.write_text(json.dumps(curve))
        publish(result_name(args.quick), name, settings, figures(), {})
        print(f"  {t_train:7.0f} s  step {d.step:6d}  F_q rel err {est.f_q_rel_err:.3e} "
              f"(+- {est.f_q_err / abs(exact_f):.1e})", flush=True)
        clock.t0 += time.perf_counter() - t0  # the evaluation does not count as training time
        return False

    if curve.get("final") is None:
        d.run(callbacks=[evaluate, clock], progress=False)
        curve["train_seconds"] = min(clock.elapsed, budget)
        est = d.estimate(n_final)  # float64
        curve["final"] = {"train_seconds": curve["train_seconds"], "step": d.step, "f_q": est.f_q,
                          "f_q_err": est.f_q_err, "f_q_rel_err": est.f_q_rel_err, "is_rel_err": est.is_rel_err,
                          "ess_fraction": est.ess_fraction}
        d.save_checkpoint(ckpt)
        curve_path.write_text(json.dumps(curve))
    final = curve["final"]
    print(f"{name}: F_q rel err {final['f_q_rel_err']:.3e} after {final['train_seconds']:.0f} s, {final['step']} steps")
    return settings, figures(), {case["key"]: final["f_q_rel_err"], f"{case['key']}_steps": final["step"]}


for _name, _case in TTA_CASES.items():
    section(_name, f"F_q vs training time at L={_case['L']} for {_case['budget'] / 60:.0f} min (resumable)",
            long=True)(lambda args, _n=_name: time_to_accuracy(args, _n))


@section("figure", "F_q relative error vs training time for L=8/16/32 from the stored curves (png)")
def figure_section(args: argparse.Namespace) -> SectionResult:
    from pyro_nrg.plotting import plot_time_to_accuracy

    blob = read_result(SCRIPT, result_name(args.quick)) if result_path(result_name(args.quick), SCRIPT).is_file() \
        else {}
    curves = {}
    for name, case in TTA_CASES.items():
        fig = blob.get("figures", {}).get(name)
        if fig and fig.get("curve"):
            curves[f"L={case['L']}"] = fig["curve"]
    fig = plot_time_to_accuracy(curves, targets={"L=16": (1800.0, 1.5e-3), "L=32": (3600.0, 3e-3)})
    path = result_path(result_name(args.quick), SCRIPT).with_name(("quick_" if args.quick else "") + "fq_vs_time.png")
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")
    return {}, {"png": path.name, "curves": sorted(curves)}, {}


def _canonical_bare_loop(model: Any, chain: Any, cfg: Any) -> tuple[float, list[float]]:
    """The bare PyTorch loop of :func:`~pyro_nrg.infer.canonical.fit_variational` for the same model: the same
    path-gradient loss (sum over the batch of beta H(x) + ln q(x) with frozen parameters in ln q), the same Adam,
    warm-up-cosine schedule and per-parameter norm clip, the same F_q record. Returns (seconds, F_q per step)."""
    import math

    from pyro_nrg.distributions import detached_parameters
    from pyro_nrg.infer.schedules import warmup_cosine

    torch.manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(cfg.steps, cfg.warmup_steps, cfg.final_lr_ratio))
    f_q = []
    t0 = time.perf_counter()
    for _ in range(cfg.steps):
        x = model.from_latent(model.latent().rsample((cfg.batch_size,)))
        with detached_parameters(model):
            log_q = model.log_prob(x)
        per = chain.beta * chain.energy(x) + log_q
        opt.zero_grad(set_to_none=True)
        per.sum().backward()
        for p in params:
            torch.nn.utils.clip_grad_norm_(p, cfg.clip_norm)
        opt.step()
        sched.step()
        f_q.append(float(model.temperature * per.detach().double().mean()))
        if not math.isfinite(f_q[-1]):
            raise RuntimeError("the bare loop diverged")
    return time.perf_counter() - t0, f_q


@section("canonical", "linear canonical flow training step: fit_variational against the bare PyTorch loop")
def canonical_section(args: argparse.Namespace) -> SectionResult:
    import statistics

    from pyro_nrg.distributions import canonical_flow
    from pyro_nrg.energies.hamiltonians import HarmonicChain
    from pyro_nrg.infer.canonical import VariationalConfig, fit_variational

    n, batch, steps, repeats = (8, 64, 40, 3) if args.quick else (32, 200, 200, 7)
    rows, figures = [], {}
    ratio_f32 = float("nan")
    for dtype in (torch.float32, torch.float64):
        chain = HarmonicChain(n, kappa=1.0, mass=1.0, temperature=1.0).to(dtype)
        cfg = VariationalConfig(steps=steps, batch_size=batch, lr=1e-2, log_every=10**9, seed=0)
        lib, bare, dev = [], [], []
        for _ in range(repeats):  # interleaved: a repeat times both loops back to back
            model = canonical_flow(n, temperature=1.0, n_blocks=0).to(dtype)
            t, f_bare = _canonical_bare_loop(model, chain, cfg)
            bare.append(t / steps)
            model = canonical_flow(n, temperature=1.0, n_blocks=0).to(dtype)
            res = fit_variational(model, chain, cfg)
            lib.append(res.seconds / steps)
            dev.append(max(abs(a - b) for a, b in zip(res.f_q, f_bare, strict=True)))
        ratio = statistics.median(lib) / statistics.median(bare)
        name = str(dtype).removeprefix("torch.")
        figures[name] = {"fit_variational_step_seconds": lib, "bare_loop_step_seconds": bare,
                         "ratio_per_repeat": [a / b for a, b in zip(lib, bare, strict=True)], "ratio": ratio,
                         "max_abs_fq_difference_per_repeat": dev}
        rows.append((name, f"{statistics.median(bare) * 1e3:.2f}", f"{statistics.median(lib) * 1e3:.2f}",
                     f"{ratio:.2f}", f"{max(dev):.1e}"))
        if dtype == torch.float32:
            ratio_f32 = ratio
    print(f"harmonic chain n={n}, linear canonical flow (scaling + linear symplectic), batch {batch}, {steps} steps, "
          f"median of {repeats} interleaved repeats")
    print(table(rows, ("dtype", "bare loop ms/step", "fit_variational ms/step", "ratio", "max |F_q diff|")))
    settings = {"n": n, "batch": batch, "steps": steps, "repeats": repeats, "flow": "canonical_flow(n, n_blocks=0)",
                "loss": "path gradient, Adam lr 1e-2, warm-up 50 + cosine, per-parameter clip 10",
                "headline_dtype": "float32"}
    return settings, figures, {"canonical_linear_step_ratio_vs_torch": ratio_f32}


def _trained_l16_guide(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """The sampling benchmark's recipe flow (``sampling.train``), checkpointed in ``--flow-dir`` and reused."""
    from pathlib import Path

    from sampling import train

    from pyro_nrg.energies import ISING_TC, IsingRelaxed

    L, steps = (4, 150) if args.quick else (16, args.nuts_train_steps)
    d, info = train(L, steps, flow_dir=Path(args.flow_dir) if args.flow_dir else None)
    return IsingRelaxed(L, ISING_TC), d.guide, info


def _grad_ms(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, repeats: int) -> float:
    """Median milliseconds of one value-and-gradient of ``fn`` at ``x`` (what one leapfrog step asks for)."""

    def once() -> None:
        xx = x.detach().clone().requires_grad_(True)
        torch.autograd.grad(fn(xx), xx)

    return median_time(once, repeats, warmup=3)[0] * 1e3


@section("nuts_cost", "where latent NUTS spends its time: one potential gradient, traced model vs direct, and "
         "Pyro NUTS's own cost per gradient")
def nuts_cost_section(args: argparse.Namespace) -> SectionResult:
    from pyro import poutine
    from pyro.infer import MCMC, NUTS
    from pyro.infer.mcmc.util import initialize_model
    from pyro.infer.reparam import NeuTraReparam

    from pyro_nrg.energies import ISING_TC, IsingRelaxed
    from pyro_nrg.flows import neural_rg
    from pyro_nrg.infer import FlowGuide, RenormalizedPotential, boltzmann_model
    from pyro_nrg.infer.pushforward import frozen

    L = 8 if args.quick else 16
    reps = 5 if args.quick else 15
    energy, flow = IsingRelaxed(L, ISING_TC), neural_rg(L=L)  # the cost does not depend on training
    guide = FlowGuide(boltzmann_model(energy), flow)
    with torch.random.fork_rng(), torch.no_grad():
        guide()  # sets the guide up (prototype trace, plates) as NeuTraReparam needs it
    n, key = L * L, "x_shared_latent"
    z, x = torch.randn(n), torch.randn(L, L)
    rows, figs = [], {}
    with frozen(flow):
        model = poutine.reparam(boltzmann_model(energy), config={"x": NeuTraReparam(guide)})
        _, traced, _, _ = initialize_model(model, max_plate_nesting=0, initial_params={key: z})
        direct = RenormalizedPotential(energy, flow)
        figs["latent_traced_ms"] = _grad_ms(lambda v: traced({key: v}), z, reps)
        figs["latent_direct_ms"] = _grad_ms(lambda v: direct({"z": v}), z, reps)
        for b in (16, 64, 256):
            figs[f"latent_direct_batch{b}_ms"] = _grad_ms(lambda v: direct({"z": v}), torch.randn(b, n), reps)
    _, traced_phys, _, _ = initialize_model(boltzmann_model(energy), max_plate_nesting=0, initial_params={"x": x})
    figs["physical_traced_ms"] = _grad_ms(lambda v: traced_phys({"x": v}), x, reps)
    figs["physical_direct_ms"] = _grad_ms(lambda v: energy.action(v).sum(), x, reps)
    # Pyro NUTS's own cost per gradient: a unit Gaussian of the same size, whose potential costs microseconds
    calls = [0]

    def gauss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        calls[0] += 1
        return 0.5 * p["z"].square().sum()

    for full in (False, True):
        calls[0] = 0
        mcmc = MCMC(NUTS(potential_fn=gauss, full_mass=full), num_samples=100 if args.quick else 300,
                    warmup_steps=50 if args.quick else 150, initial_params={"z": torch.randn(n)}, disable_progbar=True)
        t0 = time.perf_counter()
        mcmc.run()
        figs[f"nuts_overhead_{'full' if full else 'diag'}_mass_ms"] = (time.perf_counter() - t0) / calls[0] * 1e3
    over = figs["nuts_overhead_diag_mass_ms"]
    for what, key_ in (("latent, Pyro-traced NeuTra model", "latent_traced_ms"),
                       ("latent, direct potential_fn", "latent_direct_ms"),
                       *((f"latent, direct, {b} chains per call (per chain)", f"latent_direct_batch{b}_ms")
                         for b in (16, 64, 256)),
                       ("physical, Pyro-traced model", "physical_traced_ms"),
                       ("physical, direct potential_fn", "physical_direct_ms")):
        per = figs[key_] / (int(key_.split("batch")[1].split("_")[0]) if "batch" in key_ else 1)
        rows.append((what, f"{figs[key_]:.3f}", f"{per:.3f}"))
    rows.append(("Pyro NUTS itself per gradient (diag / full mass)", f"{over:.3f}",
                 f"{figs['nuts_overhead_full_mass_ms']:.3f}"))
    print(f"L={L}, one thread, medians of {reps}")
    print(table(rows, ("potential value and gradient", "ms per call", "ms per chain-gradient")))
    figs["latent_over_physical_cost_per_nuts_gradient_direct"] = (
        (figs["latent_direct_ms"] + over) / (figs["physical_direct_ms"] + over))
    figs["latent_over_physical_cost_per_nuts_gradient_traced"] = (
        (figs["latent_traced_ms"] + over) / (figs["physical_traced_ms"] + over))
    print("latent / physical cost of one NUTS gradient: traced "
          f"{figs['latent_over_physical_cost_per_nuts_gradient_traced']:.1f}, direct "
          f"{figs['latent_over_physical_cost_per_nuts_gradient_direct']:.1f}")
    return {"L": L, "repeats": reps, "flow": "neural_rg defaults (untrained: the cost does not depend on training)"}, \
        figs, {}


@section("nuts", "L=16 ESS(m2) per second: latent NUTS and latent HMC walkers against physical NUTS (direct "
         "potentials; physical NUTS with diagonal and dense mass), one trained flow", long=True)
def nuts_section(args: argparse.Namespace) -> SectionResult:
    import pyro
    from sampling import figures as sampler_figures
    from sampling import hmc_extra

    from pyro_nrg.analysis import to_inference_data
    from pyro_nrg.infer import latent_hmc_walkers, latent_nuts, physical_nuts

    energy, guide, tinfo = _trained_l16_guide(args)
    q = guide.distribution()
    if args.quick:
        size = dict(chains=2, phys=60, phys_warm=40, lat=60, lat_warm=40, walkers=32, w_draws=40, w_warm=20)
    else:
        size = dict(chains=4, phys=args.nuts_phys_draws, phys_warm=args.nuts_phys_warmup, lat=args.nuts_latent_draws,
                    lat_warm=200, walkers=64, w_draws=600, w_warm=150)
    rows: list[dict[str, Any]] = []

    def done(name: str, res: Any) -> None:
        row = sampler_figures(name, to_inference_data(res), res.sample_seconds, res.total_grad_evals, hmc_extra(res))
        rows.append(row)
        print(f"  {name}: ESS(m2) {row['m2_ess']:.0f} in {row['sample_seconds']:.0f} s, "
              f"{row['m2_ess_per_s']:.3g}/s, {row['m2_ess_per_grad']:.3g}/grad", flush=True)
        publish(result_name(args.quick), "nuts", {"partial": True, **size}, {"rows": rows, "training": tinfo}, {})

    for full in (False, True):
        pyro.set_rng_seed(1)
        res = physical_nuts(energy, size["phys"], size["phys_warm"], num_chains=size["chains"], init=q,
                            full_mass=full)
        done(f"physical_nuts_{'dense' if full else 'diag'}_mass", res)
    pyro.set_rng_seed(2)
    res = latent_nuts(energy, guide, size["lat"], size["lat_warm"], num_chains=size["chains"], keep_samples=False,
                      keep_latent=False)
    done("latent_nuts", res)
    pyro.set_rng_seed(3)
    res = latent_hmc_walkers(energy, guide, size["walkers"], size["w_draws"], size["w_warm"], step_size=0.2,
                             num_steps=10, adapt_step_size=True, target_accept_prob=0.85, keep_samples=False,
                             mass_matrix="dense")
    done("latent_hmc_walkers", res)
    by = {r["method"]: r for r in rows}
    best_phys = max((r for r in rows if r["method"].startswith("physical")), key=lambda r: r["m2_ess_per_s"])
    ess_min = min(r["m2_ess"] for r in rows if r["method"] in ("latent_nuts", "latent_hmc_walkers",
                                                               best_phys["method"]))
    head = {
        "L16_ess_per_second_ratio_latent_nuts_vs_physical_nuts": by["latent_nuts"]["m2_ess_per_s"]
        / best_phys["m2_ess_per_s"],
        "L16_ess_per_second_ratio_latent_hmc_walkers_vs_physical_nuts": by["latent_hmc_walkers"]["m2_ess_per_s"]
        / best_phys["m2_ess_per_s"],
        "L16_sampling_ratio_baseline": best_phys["method"],
        "L16_sampling_min_ess": ess_min,
        "L16_sampling_ratios_meet_ess_400": bool(ess_min >= 400),
    }
    print(table([(r["method"], f"{r['chains']} x {r['draws']}", f"{r['grads_per_draw']:.1f}", f"{r['m2_ess']:.0f}",
                  f"{r['sample_seconds']:.0f}", f"{r['m2_ess_per_s']:.3g}", f"{r['m2_ess_per_grad']:.3g}",
                  f"{r['m2_mean']:.4f}+-{r['m2_err']:.4f}") for r in rows],
                ("method", "chains x draws", "grads/draw", "ESS(m2)", "seconds", "ESS/s", "ESS/grad", "<m2>")))
    settings = {**size, "potential": "direct (Pyro potential_fn path, no model trace per gradient)",
                "physical": "Pyro NUTS, target accept 0.8, starts from flow draws, diagonal and dense mass adaptation; "
                            "the better per second is the baseline",
                "latent_nuts": "Pyro NUTS on the renormalized energy with the Z2 sector factor, diagonal mass",
                "walkers": "10 leapfrog steps, step 0.2 adapted to acceptance 0.85, dense metric",
                "chains": "one after another (Pyro on 2 cores)", "training": tinfo}
    return settings, {"rows": rows, "training": tinfo}, head


@section("ddp", "weak scaling of distributed distillation: the headline of benchmarks/distributed.py's stored run "
         "(run that script to measure it; it spawns its own processes)")
def ddp_section(args: argparse.Namespace) -> SectionResult:
    stored = read_result("distributed", "distributed_quick" if args.quick else None)
    head = stored["headline"]
    print(f"distributed.py of {stored['date']}: 2 processes / 1 process = {head['ddp_weak_scaling_2proc']:.2f} "
          f"(repeats {', '.join(f'{r:.2f}' for r in head['ddp_weak_scaling_2proc_repeats'])})")
    return {"source": "benchmarks/results/distributed/" + ("quick" if args.quick else "full") + ".json",
            "date": stored["date"], **stored["settings"]}, {"figures": stored["figures"]}, {
        "ddp_weak_scaling_2proc": head["ddp_weak_scaling_2proc"],
        "ddp_weak_scaling_2proc_repeats": head["ddp_weak_scaling_2proc_repeats"]}


# --- command line -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", action="append", choices=sorted(SECTIONS), help="run only this section (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the sections and exit")
    ap.add_argument("--quick", action="store_true", help="CI-sized figures, written to speed_quick.json")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--eager", action="store_true", help="time-to-accuracy sections on the eager path")
    ap.add_argument("--run-dir", default="runs/speed", help="checkpoints and curves of the time-to-accuracy sections")
    ap.add_argument("--flow-dir", default=None, help="nuts: keep/reuse the trained L=16 flow's checkpoint here")
    ap.add_argument("--nuts-train-steps", type=int, default=3000, help="nuts: recipe steps of the L=16 flow")
    ap.add_argument("--nuts-phys-draws", type=int, default=3000, help="nuts: physical NUTS draws per chain")
    ap.add_argument("--nuts-phys-warmup", type=int, default=500, help="nuts: physical NUTS warm-up per chain")
    ap.add_argument("--nuts-latent-draws", type=int, default=1500, help="nuts: latent NUTS draws per chain")
    args = ap.parse_args(argv)
    if args.list:
        for name, (_, help, long) in SECTIONS.items():
            print(f"{name:28s} {'(long) ' if long else ''}{help}")
        return
    torch.set_num_threads(args.threads)
    names = args.section or [n for n, (_, _, long) in SECTIONS.items() if not long]
    for name in names:
        fn = SECTIONS[name][0]
        print(f"== {name}", flush=True)
        settings, figures, headline = fn(args)
        publish(result_name(args.quick), name, {"quick": args.quick, **settings}, figures, headline)
        for k, v in headline.items():
            print(f"{k} = {v}")
    print(f"wrote {result_path(result_name(args.quick), SCRIPT)}")


if __name__ == "__main__":
    main()
