"""Write docs/results.md and its learning-curve figures from the JSON files the benchmark scripts wrote.

    python benchmarks/make_results.py

Reads every ``benchmarks/results/*.json`` except those whose name starts with ``scratch`` and
writes ``docs/results.md`` (tables: learning, per-algorithm throughput, scaling, PPO vs rejax,
profile) and ``docs/figures/learning_<env>.png`` (one per environment, for the learning rows that
carry a curve). Every table and figure names the command, the machine and the package versions
stored with it. The output depends on the JSON only (sorted rows, fixed number formats), so
regenerating from the same files gives the same bytes; ``tests/test_results_doc.py`` checks that
docs/results.md matches the JSON. Needs no JAX (matplotlib only for the figures).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
DOCS = os.path.join(ROOT, "docs")
FIGURES = "figures"  # under the docs directory

ENV_ORDER = ["CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0", "Breakout-MinAtar"]

#: (env, algo) -> reference final return with its source and budget (from the project's notes on
#: the literature and peer implementations).
REFERENCES = {
    ("CartPole-v1", "ppo"): "490.0 +- 6.1 (CleanRL, 3 seeds); 487.6 mean, 471.0 worst (PureJaxRL classic config, "
                            "8 seeds); 5e5 steps",
    ("CartPole-v1", "trpo"): "500 (rl-baselines3-zoo, 1 seed, 1e5 steps)",
    ("Acrobot-v1", "ppo"): "-86.4 (CleanRL, 5e5 steps)",
    ("Pendulum-v1", "ppo"): "about -186 (1 seed, 1e6 steps, 100 envs x 100 steps config)",
    ("Pendulum-v1", "trpo"): "-174.6 (rl-baselines3-zoo with state-dependent exploration, 1e5 steps)",
    ("Breakout-MinAtar", "ppo"): "28 (gymnax README, 1e7 steps)",
}

#: file-name prefixes of the result files this script knows, in the order their sections appear
KINDS = ["learning", "suite", "throughput_algos", "throughput_envs", "throughput_seeds", "brax_speed", "ppo_cartpole",
         "profile_ppo", "offpolicy_peers"]

PPO_COLUMNS = [("library", "name", ""), ("seeds", "num_seeds", "d"), ("devices", "devices_used", "d"),
               ("env steps/s, best round", "steps_per_second", ",.0f"),
               ("median round", "steps_per_second_median", ",.0f"),
               ("purejaxpg / rejax, median of rounds (range)", "ratio", ""),
               ("CPU s / wall s", "cpu_per_wall", ".2f"),
               ("compile s", "compile_s", ".1f"), ("final return mean", "final_return_mean", ".1f"),
               ("worst seed", "final_return_worst", ".1f")]
ALGO_COLUMNS = [("algo", "algo", ""), ("env steps/s (best round)", "steps_per_second", ",.0f"),
                ("median round", "steps_per_second_median", ",.0f"),
                ("/ PPO, best", "ratio_to_ppo_best", ".2f"), ("/ PPO, median", "ratio_to_ppo_median", ".2f"),
                ("compile s", "compile_s", ".1f")]
LEARNING_COLUMNS = [("env", "env_id", ""), ("algo", "algo", ""), ("env steps per seed", "timesteps_per_seed", ",d"),
                    ("seeds", "num_seeds", "d"), ("final return mean", "final_return_mean", ".1f"),
                    ("worst seed", "final_return_worst", ".1f"), ("reference (source, budget)", "reference", ""),
                    ("env steps/s, all seeds", "steps_per_second", ",.0f"),
                    ("run", "run", "")]
PROFILE_COLUMNS = [("variant", "variant", ""), ("best ms / iteration", "best_ms_per_iteration", ".3f"),
                   ("median ms / iteration", "median_ms_per_iteration", ".3f"),
                   ("env steps/s, best", "steps_per_second_best", ",.0f")]


def load_results(results_dir: str = RESULTS) -> dict[str, dict[str, Any]]:
    """``{file stem: payload}`` of every ``*.json`` in ``results_dir`` but ``scratch*``, sorted by name."""
    out = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        name = os.path.splitext(os.path.basename(path))[0]
        if name.startswith("scratch"):
            continue
        if not any(name.startswith(kind) for kind in KINDS):
            raise ValueError(f"{path}: make_results.py has no section for it; name it with one of the prefixes "
                             f"{KINDS} (or 'scratch' to leave it out), or add a section.")
        with open(path) as fh:
            out[name] = json.load(fh)
    return out


def _fmt(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def markdown(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A Markdown table; ``columns`` are ``(header, key, format spec)``."""
    lines = ["| " + " | ".join(h for h, _, _ in columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(k), f) for _, k, f in columns) + " |")
    return "\n".join(lines)


def command(text: str) -> str:
    """A stored command line as typed from the repository root (scripts run from benchmarks/ are
    stored as ``python script.py ...``)."""
    parts = text.split(" ", 2)
    if len(parts) >= 2 and parts[1].endswith(".py") and "/" not in parts[1]:
        parts[1] = "benchmarks/" + parts[1]
    return " ".join(parts)


def machine_summary(machine: dict[str, Any]) -> str:
    """CPU, cores, JAX backend and devices, Python and package versions of a stored ``machine`` entry."""
    devices = machine.get("devices", [])
    versions = ", ".join(f"{k} {v}" for k, v in sorted(machine.get("versions", {}).items()))
    return (f"{machine.get('cpu')}, {machine.get('cores')} cores, JAX backend {machine.get('jax_backend')} with "
            f"{len(devices)} device{'s' if len(devices) != 1 else ''} ({', '.join(devices)}); "
            f"Python {machine.get('python')}; {versions}")


def provenance(name: str, data: dict[str, Any]) -> str:
    """The source line under a table: file, command and machine of a whole file."""
    m = data["machine"]
    return f"Source: `benchmarks/results/{name}.json`, written by `{command(m['command'])}` on {machine_summary(m)}."


def _join(values: Any) -> str:
    return ", ".join(str(v) for v in sorted(set(values)))


def _env_key(env_id: str) -> tuple:
    return (ENV_ORDER.index(env_id) if env_id in ENV_ORDER else len(ENV_ORDER), env_id)


# ---------------------------------------------------------------------------------------- learning

def _runs(rows: list[dict]) -> list[tuple[str, str]]:
    """Distinct ``(command, machine summary)`` of the rows that carry their own, sorted."""
    return sorted({(r["command"], machine_summary(r["machine"])) for r in rows if "command" in r})


def learning_section(name: str, data: dict[str, Any]) -> list[str]:
    rows = sorted(data["rows"], key=lambda r: (_env_key(r["env_id"]), r["algo"], r.get("label", "")))
    runs = _runs(rows)
    table_rows = []
    for r in rows:
        run = runs.index((r["command"], machine_summary(r["machine"]))) + 1 if "command" in r else None
        table_rows.append({**r, "algo": display_name(r), "run": run,
                           "reference": None if r.get("label") else REFERENCES.get((r["env_id"], r["algo"]))})
    seeds = _join(r["num_seeds"] for r in rows)
    out = [f"### Final return per algorithm and environment (`{name}.json`)", "",
           f"Each row trains {seeds} seeds vmapped in one program with the algorithm's preset for the "
           "environment (or its defaults) at the budget given; mean and worst are over the seeds.", "",
           markdown(table_rows, LEARNING_COLUMNS), ""]
    out += [f"Final return: {d}." for d in sorted({r["final_return_definition"] for r in rows
                                                   if "final_return_definition" in r})]
    out += ["Reference returns are the values the named source reports at its own budget, which may differ "
            "from the row's.", ""]
    if runs:
        out += ["Runs (command as typed from the repository root; machine):", ""]
        out += [f"{i}. `{cmd}`; {machine}." for i, (cmd, machine) in enumerate(runs, 1)]
        out.append("")
    if any("command" not in r for r in rows):
        m = data["machine"]
        out += ["Rows without a run number carry no command of their own; the file's `machine` entry is that of "
                f"the run that wrote the file last: `{command(m['command'])}`, on "
                f"{machine_summary(m)}.", ""]
    return out


def display_name(row: dict) -> str:
    """The algorithm's name, with the variant's label (``learning.py --label``) when it has one."""
    return f"{row['algo']} ({row['label']})" if row.get("label") else row["algo"]


def curve_rows(results: dict[str, dict[str, Any]]) -> dict[str, list[tuple[str, dict]]]:
    """``{env: [(label, row)]}`` of the learning rows that carry a curve, envs and labels sorted."""
    found = [(name, r) for name, data in results.items() if name.startswith("learning")
             for r in data["rows"] if r.get("curve")]
    out: dict[str, list[tuple[str, dict]]] = {}
    for name, r in found:
        clash = sum(1 for _, o in found if (o["env_id"], display_name(o)) == (r["env_id"], display_name(r))) > 1
        out.setdefault(r["env_id"], []).append((f"{display_name(r)} ({name})" if clash else display_name(r), r))
    return {env: sorted(out[env], key=lambda item: item[0]) for env in sorted(out, key=_env_key)}


def figure_file(env_id: str) -> str:
    return f"learning_{env_id.replace('/', '_')}.png"


def curves_section(results: dict[str, dict[str, Any]]) -> list[str]:
    out = ["### Learning curves", ""]
    curves = curve_rows(results)
    if not curves:
        return out + ["No learning row in the JSON files carries a curve.", ""]
    definitions = sorted({r["curve"]["definition"] for rows in curves.values() for _, r in rows})
    out += ["Mean over seeds of each seed's curve, with a band from the lowest to the highest seed. "
            + " ".join(f"Curve points: {d}." for d in definitions), ""]
    for env_id, rows in curves.items():
        out += [f"![learning curves on {env_id}]({FIGURES}/{figure_file(env_id)})", ""]
        by_command: dict[str, list[tuple[str, dict]]] = {}
        for label, r in rows:
            by_command.setdefault(r["command"], []).append((label, r))
        runs = []
        for cmd, items in sorted(by_command.items()):
            runs.append(f"`{cmd}` ({', '.join(label for label, _ in items)})")
        out += [f"{env_id}: " + "; ".join(runs) + ". Machine: "
                + "; ".join(sorted({machine_summary(r["machine"]) for _, r in rows})) + ".", ""]
    return out


# -------------------------------------------------------------------------------------- throughput

def throughput_algos_section(name: str, data: dict[str, Any]) -> list[str]:
    ours = [r for r in data["rows"] if r.get("library") == "purejaxpg"]
    title = (f"### Steps/s per algorithm, {_join(r['env_id'] for r in ours)}, "
             f"{_join(r['num_envs'] for r in ours)} envs x {_join(r['num_steps'] for r in ours)} steps, "
             f"{_join(r['num_seeds'] for r in ours)} seed(s) (`{name}.json`)")
    return [title, "", markdown(data["rows"], ALGO_COLUMNS), "", provenance(name, data), ""]


def scaling_section(name: str, data: dict[str, Any]) -> list[str]:
    header = "num_envs" if name.startswith("throughput_envs") else "num_seeds"
    where = f", {data['cpu_devices']} CPU devices" if data.get("cpu_devices", 1) > 1 else ""
    rows = [{**r, "devices_used": r.get("devices_used", 1)} for r in data["rows"]]
    title = (f"### PPO steps/s as {header} grows ({_join(r['env_id'] for r in rows)}, "
             f"{_join(r['num_steps'] for r in rows)} steps per env per iteration{where}; `{name}.json`)")
    table = markdown(rows, [(header, header, "d"), ("devices", "devices_used", "d"),
                            ("env steps/s", "steps_per_second", ",.0f"),
                            ("raw env ceiling", "ceiling_steps_per_second", ",.0f"),
                            ("compile s", "compile_s", ".1f")])
    return [title, "", table, "", provenance(name, data), ""]


def ppo_vs_rejax_section(name: str, data: dict[str, Any]) -> list[str]:
    rows = []
    for r in data["rows"]:
        label = {"purejaxpg": f"purejaxpg `{r.get('algo')}`", "rejax": "rejax `ppo` (same config)",
                 "rejax, seeds split by the benchmark": "rejax `ppo`, seeds split over the devices by the benchmark",
                 }.get(r["library"], "raw gymnax stepping, random actions (ceiling)")
        ratio = r.get("ratio_purejaxpg_over_rejax")
        if ratio is not None and "ratio_min" in r:
            ratio = f"{ratio:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f})"
        elif ratio is not None:
            ratio = f"{ratio:.2f}"
        rows.append({**r, "devices_used": r.get("devices_used", 1), "ratio": ratio,
                     "name": label if r.get("env_id") == "CartPole-v1" else f"{label} on {r['env_id']}"})
    pool = data.get("xla_cpu_threads")
    devices = data.get("cpu_devices", 1)
    title = (f"### PPO vs rejax and the raw-env ceiling: {devices} CPU device{'s' if devices != 1 else ''}, "
             f"XLA CPU thread pool {f'of {pool} thread(s)' if pool else 'at its default size'} (`{name}.json`)")
    config = ", ".join(f"{k} {v if isinstance(v, str) else json.dumps(v)}" for k, v in data.get("config", {}).items())
    out = [title, "", f"Config: {config}.", "", markdown(rows, PPO_COLUMNS), ""]
    out += [f"rejax's final return: {e}." for e in sorted({r["evaluation"] for r in data["rows"] if "evaluation" in r})]
    out += ["The ratio is the median over the timed rounds of each round's ratio of wall times (rejax's over "
            "purejaxpg's), smallest and largest round in brackets. CPU s / wall s: the process's CPU time per "
            "second of wall time during the timed runs.", "", provenance(name, data), ""]
    return out


OFFPOLICY_COLUMNS = [("algo", "algo", ""), ("seeds", "num_seeds", "d"), ("library", "library", ""),
                     ("env steps/s, median round", "sps", ",.0f"), ("compile s", "compile_s", ".1f"),
                     ("purejaxpg / peer steps/s (range)", "ratio", ""), ("purejaxpg / peer compile s", "compile_ratio", "")]


def offpolicy_peers_section(name: str, data: dict[str, Any]) -> list[str]:
    rows = []
    for r in data["rows"]:
        ratio = r.get("ratio_purejaxpg_over_peer")
        if ratio is not None:
            lo, hi = r.get("ratio_purejaxpg_over_peer_min"), r.get("ratio_purejaxpg_over_peer_max")
            ratio = f"{ratio:.2f}" + (f" ({lo:.2f}-{hi:.2f})" if lo is not None else "")
        compile_ratio = r.get("compile_ratio_purejaxpg_over_peer")
        rows.append({**r, "sps": r.get("steps_per_second_median", r.get("steps_per_second")), "ratio": ratio or "",
                     "compile_ratio": f"{compile_ratio:.2f}" if compile_ratio is not None else ""})
    notes = sorted({n for r in data["rows"] for n in (r.get("notes") or [])})
    out = [f"### SAC and TD3 vs rejax and sbx at rejax's Pendulum-v1 configs (`{name}.json`)", "",
           markdown(rows, OFFPOLICY_COLUMNS), "",
           "Steps/s ratio above 1: purejaxpg is faster; compile ratio above 1: purejaxpg compiles slower. Ratios are "
           "medians over alternating rounds in one process (smallest and largest round in brackets); this "
           "machine's timings move by +-15% between runs, so a ratio within 0.85-1.15 is a tie.", ""]
    out += [f"* {n}" for n in notes]
    out += ["", provenance(name, data), ""]
    return out


def profile_section(name: str, data: dict[str, Any]) -> list[str]:
    title = (f"### Where PPO's time goes: wall time per iteration of each variant over {data['iterations']} "
             f"iterations (`{name}.json`)")
    return [title, "", markdown(data["rows"], PROFILE_COLUMNS), "",
            "Variants as defined in `benchmarks/profile_ppo.py`.", "", provenance(name, data), ""]


# ------------------------------------------------------------------------------------------ output

BRAX_BACKEND_COLUMNS = [("env", "env", ""), ("physics", "backend", ""), ("raw env steps/s", "raw", ",.0f"),
                        ("through the adapter", "adapter", ",.0f"), ("compile s (raw)", "raw_compile", ".1f"),
                        ("compile s (adapter)", "adapter_compile", ".1f")]
BRAX_TRAIN_COLUMNS = [("algo", "algo", ""), ("env", "env_id", ""), ("envs", "num_envs", "d"),
                      ("training loop env steps/s", "steps_per_second", ",.0f"),
                      ("raw env steps/s, same envs", "raw_env_steps_per_second", ",.0f"), ("compile s", "compile_s", ".1f")]
SUITE_COLUMNS = [("part", "part", ""), ("algo", "algo", ""), ("env", "env_id", ""), ("seeds", "num_seeds", "d"),
                 ("envs", "num_envs", "d"), ("env steps/s, all seeds", "steps_per_second", ",.0f"),
                 ("compile s", "compile_s", ".1f"), ("final return mean", "final", ".1f")]


def brax_section(name: str, data: dict[str, Any]) -> list[str]:
    """brax's physics pipelines (raw env and through the adapter) and PPO / SAC's training loops."""
    by_key: dict[tuple, dict] = {}
    for r in data["backends"]["rows"]:
        row = by_key.setdefault((r["env"], r["backend"]), {"env": r["env"], "backend": r["backend"]})
        row[r["kind"]] = r["steps_per_second"]
        row[f"{r['kind']}_compile"] = r["compile_s"]
    sizes = _join(f"{r['num_envs']} envs x {r['num_steps']} steps" for r in data["backends"]["rows"])
    out = [f"### brax physics pipelines and training loops (`{name}.json`)", "",
           f"A `lax.scan` of random actions in vmapped envs ({sizes}), best of the repeats, compilation apart; "
           "'through the adapter' is the same through `purejaxpg.backends.brax_env` (time limit, auto-reset). "
           "`generalized` is the adapter's default (`purejaxpg.backends.brax_env`: `spring` and `positional` step "
           "this pendulum at a different control interval).", "",
           markdown(list(by_key.values()), BRAX_BACKEND_COLUMNS), "",
           f"Command: `{command(data['backends']['command'])}`.", "",
           "PPO and SAC at their `brax/inverted_pendulum` presets (one seed), beside the raw env's rate at the "
           "same number of envs:", "",
           markdown(data["train"]["rows"], BRAX_TRAIN_COLUMNS), "",
           f"Command: `{command(data['train']['command'])}`.", "", provenance(name, data), ""]
    return out


def suite_section(name: str, data: dict[str, Any]) -> list[str]:
    """``benchmarks/suite.py``: PPO CartPole seeds, PPO / SAC on brax, every algorithm's steps/s."""
    rows = [{**r, "final": r.get("final_return_mean") if r.get("part") != "speed" else None} for r in data["rows"]]
    return [f"### Suite at scale `{data['scale']}` (`{name}.json`)", "",
            f"{data['description']}; {data['wall_seconds']:.0f} s in all. Steps/s exclude compilation; the "
            "throughput rows ('speed') run a fixed number of iterations and are not tuned learners.", "",
            markdown(rows, SUITE_COLUMNS), "", f"Command: `{data['command']}`.", "", provenance(name, data), ""]


def render_markdown(results_dir: str = RESULTS) -> str:
    """The text of docs/results.md for the JSON files in ``results_dir`` (writes nothing)."""
    results = load_results(results_dir)
    by_kind = {kind: [(n, d) for n, d in results.items() if n.startswith(kind)] for kind in KINDS}
    out = ["# Results", "",
           "This file is generated by `python benchmarks/make_results.py` from the JSON files under "
           "`benchmarks/results/`, which the scripts of `benchmarks/run_all.sh` write; do not edit it by hand. "
           "Each table names its source file, the command that produced it (as typed from the repository "
           "root) and the machine and package versions, as stored in the JSON.",
           "", "## Learning", ""]
    for name, data in by_kind["learning"]:
        out += learning_section(name, data)
    out += curves_section(results)
    if by_kind["suite"]:
        out += ["## Suite", ""]
        for name, data in by_kind["suite"]:
            out += suite_section(name, data)
    out += ["## Throughput per algorithm", ""]
    for name, data in by_kind["throughput_algos"]:
        out += throughput_algos_section(name, data)
    out += ["## Scaling", ""]
    for name, data in by_kind["throughput_envs"] + by_kind["throughput_seeds"]:
        out += scaling_section(name, data)
    if by_kind["brax_speed"]:
        out += ["## brax", ""]
        for name, data in by_kind["brax_speed"]:
            out += brax_section(name, data)
    out += ["## PPO vs rejax", ""]
    for name, data in by_kind["ppo_cartpole"]:
        out += ppo_vs_rejax_section(name, data)
    out += ["## Off-policy vs peers", ""]
    for name, data in by_kind["offpolicy_peers"]:
        out += offpolicy_peers_section(name, data)
    out += ["## Profile", ""]
    for name, data in by_kind["profile_ppo"]:
        out += profile_section(name, data)
    return "\n".join(out).rstrip("\n") + "\n"


def write_figures(results_dir: str, figures_dir: str) -> list[str]:
    """One PNG per environment with curves: per algorithm the mean over seeds and a min-max band.

    Removes the ``learning_*.png`` in ``figures_dir`` that no longer have data. Returns the paths.
    """
    import warnings

    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    os.makedirs(figures_dir, exist_ok=True)
    curves = curve_rows(load_results(results_dir))
    paths = []
    for env_id, rows in curves.items():
        fig = Figure(figsize=(7.0, 4.6))
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        for label, r in rows:
            x = np.asarray(r["curve"]["env_steps"], np.float64)
            y = np.array([[np.nan if v is None else v for v in seed] for seed in r["curve"]["episode_return"]],
                         np.float64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN points: no episode ended yet
                mean, low, high = np.nanmean(y, 0), np.nanmin(y, 0), np.nanmax(y, 0)
            line, = ax.plot(x, mean, label=f"{label} ({y.shape[0]} seeds)", linewidth=1.2)
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xlabel("environment steps per seed")
        ax.set_ylabel("episode return")
        ax.set_title(f"{env_id}: mean over seeds, band = min to max seed")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=7, ncol=2)
        source = sorted({r["command"] for _, r in rows}) + sorted({machine_summary(r["machine"]) for _, r in rows})
        fig.text(0.01, 0.0, "\n".join(source), fontsize=6, va="top", family="monospace")
        path = os.path.join(figures_dir, figure_file(env_id))
        fig.savefig(path, dpi=120, bbox_inches="tight", metadata={"Software": None})
        paths.append(path)
    for stale in sorted(glob.glob(os.path.join(figures_dir, "learning_*.png"))):
        if stale not in paths:
            os.remove(stale)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", default=RESULTS, help="where the JSON files are (default: benchmarks/results)")
    parser.add_argument("--docs-dir", default=DOCS, help="where results.md and figures/ go (default: docs)")
    args = parser.parse_args()
    text = render_markdown(args.results_dir)
    os.makedirs(args.docs_dir, exist_ok=True)
    path = os.path.join(args.docs_dir, "results.md")
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    print("wrote", path)
    for figure in write_figures(args.results_dir, os.path.join(args.docs_dir, FIGURES)):
        print("wrote", figure)


if __name__ == "__main__":
    main()
