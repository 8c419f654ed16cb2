"""``python -m purejaxpg train``: train seeds of one algorithm, optionally checkpointed, and
``train --resume DIR``, which continues a checkpointed run with its saved settings (the two
share the checkpointed run and the final summary and files)."""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from purejaxpg.cli.common import (add_cpu_devices_flag, add_distributed_flags, add_setting_flags, algo_from_argv,
                                  apply_config_file, devices_note, error, is_writer, positive, print_progress,
                                  read_config_file, setting_overrides, versions)
from purejaxpg.loggers import KINDS as LOG_KINDS


def _train_parser(algo_cls: type | None) -> argparse.ArgumentParser:
    """The parser of ``train``: the run's own flags and, given ``algo_cls``, its setting flags."""
    from purejaxpg import algorithms

    parser = argparse.ArgumentParser(prog="python -m purejaxpg train",
                                     description="Train seeds of one algorithm in one compiled call.")
    parser.add_argument("--algo", default="ppo", help=f"one of {', '.join(sorted(algorithms.ALGORITHMS))}")
    parser.add_argument("--env", default="CartPole-v1",
                        help="environment id: gymnax's (CartPole-v1), brax/<name> or jaxmarl/<name> (python -m purejaxpg list)")
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds, vmapped in one call")
    parser.add_argument("--seed", type=int, default=0, help="base seed; run i uses fold_in(PRNGKey(seed), i)")
    parser.add_argument("--out", default=None, help="output folder (config.json, metrics.csv, summary.json, learning_curve.png, "
                                                    "checkpoints/ with the final state for eval, render and --resume)")
    parser.add_argument("--config", default=None, metavar="FILE.yaml",
                        help="settings from a YAML file with the flags' names as keys (lr: 1e-3, num_envs: 16, algo: sac, "
                             "env: Pendulum-v1, seeds: 8, ...); flags given override it")
    parser.add_argument("--print-config", action="store_true",
                        help="print the full effective settings (presets, file and flags applied) as YAML and exit")
    parser.add_argument("--log", action="append", default=None, choices=LOG_KINDS,
                        help="also log to TensorBoard (OUT/tensorboard) or Weights & Biases (offline, OUT/wandb); "
                             "repeat for both; needs --out")
    parser.add_argument("--quiet", action="store_true", help="no progress output, only the final summary")
    parser.add_argument("--no-checkpoint", action="store_true",
                        help="do not save the final state to OUT/checkpoints (eval, render and --resume need it)")
    parser.add_argument("--chunk-iterations", type=int, default=None, help="iterations per compiled chunk; progress is printed between chunks (default: about 20 chunks)")
    parser.add_argument("--no-presets", action="store_true", help="ignore the per-environment presets")
    parser.add_argument("--checkpoint-every", type=int, default=None, metavar="K",
                        help="save the whole run state to OUT/checkpoints every K chunks (and at the end); needs --out")
    parser.add_argument("--keep-checkpoints", type=int, default=2, metavar="N", help="newest checkpoints kept (default 2)")
    parser.add_argument("--resume", default=None, metavar="DIR",
                        help="continue the run saved in DIR (its settings and newest checkpoint); writes into DIR")
    parser.add_argument("--stop-after-chunks", type=int, default=None, metavar="N",
                        help="stop after N chunks of this call, once checkpointed (for tests and jobs of limited wall time)")
    add_cpu_devices_flag(parser)
    add_distributed_flags(parser)
    if algo_cls is not None:
        add_setting_flags(parser, algo_cls)
    return parser


def _chunk_flags_error(args: argparse.Namespace) -> str | None:
    """The message for the first of --chunk-iterations, --checkpoint-every, --keep-checkpoints and
    --stop-after-chunks (flags of both ``train`` and ``train --resume``) given below 1, or None."""
    for flag, value in (("--chunk-iterations", args.chunk_iterations), ("--checkpoint-every", args.checkpoint_every),
                        ("--keep-checkpoints", args.keep_checkpoints), ("--stop-after-chunks", args.stop_after_chunks)):
        if (message := positive(flag, value)) is not None:
            return message
    return None


def cmd_train(argv: list[str]) -> int:
    """``train``: build the run from the flags, train its seeds in chunks (checkpointed with
    --checkpoint-every) and write its results to --out; with --resume, `cmd_resume`."""
    from purejaxpg import algorithms, experiment, train
    from purejaxpg.config import ConfigError

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--resume", default=None)
    if pre.parse_known_args(argv)[0].resume is not None:
        return cmd_resume(argv)
    pre.add_argument("--config", default=None)
    config_path = pre.parse_known_args(argv)[0].config
    try:
        file_settings = read_config_file(config_path) if config_path else {}
    except ValueError as err:
        return error(err)
    algo_name = algo_from_argv(argv) if "--algo" in " ".join(argv) else file_settings.get("algo", "ppo")
    try:
        algo_cls = algorithms.get(algo_name)
    except ConfigError as err:
        return error(err)
    parser = _train_parser(algo_cls)
    if file_settings:
        try:
            apply_config_file(parser, file_settings, config_path, ignore=("algo", "config"))
        except ValueError as err:
            return error(err)
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: give at least one seed")
    if (message := _chunk_flags_error(args)) is not None:
        return error(message)
    if args.checkpoint_every is not None and not args.out:
        return error("--checkpoint-every needs --out DIR (the checkpoints go to DIR/checkpoints)")
    if args.stop_after_chunks is not None and args.checkpoint_every is None:
        return error("--stop-after-chunks needs --checkpoint-every (a stopped run continues from its checkpoint)")
    try:
        algo, config, hparams = experiment.build(algo_name, args.env, setting_overrides(args, algo_cls),
                                                 use_presets=not args.no_presets)
        trainer = train.make_train(algo, config, hparams)
    except ConfigError as err:
        return error(err)
    chunk = args.chunk_iterations or max(1, -(-config.num_iterations // 20))
    if args.print_config:
        print(effective_config_yaml(algo, config, hparams, args, chunk), end="")
        return 0
    description = experiment.describe(algo, config, hparams)
    description.update(seeds=args.seeds, seed=args.seed, chunk_iterations=chunk, versions=versions())
    if args.checkpoint_every is not None:
        description.update(checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints)
    shard, placement = devices_note(args.seeds)
    if not args.quiet:
        print(f"purejaxpg: {algo.name} on {config.env_id}, {args.seeds} seed(s) x {config.num_iterations} iterations "
              f"x {config.batch_size} steps ({config.num_envs} envs x {config.num_steps} steps){placement}", flush=True)
    try:
        loggers = _loggers(args.log, args.out, description, args.seeds)
    except ConfigError as err:
        return error(err)
    callback = print_progress(config.num_iterations, config.batch_size, args.seeds, quiet=args.quiet, loggers=loggers)
    keys = train.seed_keys(args.seed, args.seeds)
    try:
        if not args.out or args.no_checkpoint:
            result = train.run_chunked(trainer, keys, hparams, chunk_iterations=chunk, callback=callback, shard=shard)
            return _finish_train(args.out, description, result.metrics, result.steps_per_second,
                                 result.compile_seconds, result.run_seconds)
        # with --out the final state is saved (for eval, render, load and --resume); the numbers are
        # those of one uncheckpointed call, since a chunked run is bit-identical to one call
        _write_config(args.out, description)
        every = args.checkpoint_every or 10**9  # 10**9 chunks: only the final state
        return _run_checkpointed(trainer, keys, hparams, args.out, description, chunk, every,
                                 args.keep_checkpoints, callback, args.stop_after_chunks, shard=shard)
    finally:
        for logger in loggers:
            logger.close()


def _loggers(kinds: list[str] | None, out: str | None, description: dict, num_runs: int) -> list:
    """The `purejaxpg.loggers` of ``--log`` (checked in every process; only process 0 of a
    multi-process run logs)."""
    from purejaxpg import loggers

    loggers.check(kinds or [], out)
    if not kinds or not is_writer():
        return []
    return loggers.make(kinds, out, description, num_runs)


def effective_config_yaml(algo, config, hparams, args: argparse.Namespace, chunk: int) -> str:
    """The run's every setting as flat YAML, usable as ``--config`` (``--print-config``)."""
    import yaml

    from purejaxpg import experiment

    described = experiment.describe(algo, config, hparams)
    flat = {"algo": algo.name, "env": config.env_id, "seeds": args.seeds, "seed": args.seed,
            "chunk_iterations": chunk}
    for section in ("train", "algo_settings", "hparams"):
        for key, value in described[section].items():
            if key != "env_id":
                flat[key] = list(value) if isinstance(value, tuple) else value
    header = "# every setting of this run (presets, --config file and flags applied); " \
             "python -m purejaxpg train --config FILE.yaml reads it back\n"
    return header + yaml.safe_dump(flat, sort_keys=False)


def cmd_resume(argv: list[str]) -> int:
    """``train --resume DIR``: the saved settings and newest intact checkpoint of DIR."""
    from purejaxpg import checkpoint
    from purejaxpg.config import ConfigError

    parser = argparse.ArgumentParser(prog="python -m purejaxpg train --resume DIR",
                                     description="Continue a checkpointed run with its saved settings.")
    parser.add_argument("--resume", required=True, metavar="DIR")
    parser.add_argument("--chunk-iterations", type=int, default=None)
    parser.add_argument("--checkpoint-every", type=int, default=None, metavar="K")
    parser.add_argument("--keep-checkpoints", type=int, default=None, metavar="N")
    parser.add_argument("--stop-after-chunks", type=int, default=None, metavar="N")
    add_cpu_devices_flag(parser)
    add_distributed_flags(parser)
    args, extra = parser.parse_known_args(argv)
    if extra:
        return error(f"--resume continues the run with the settings saved in {args.resume}; "
                     f"{' '.join(extra)} cannot be given with it (start a new run to change settings)")
    if (message := _chunk_flags_error(args)) is not None:
        return error(message)
    folder = os.path.join(args.resume, "checkpoints")
    try:
        ckpt = checkpoint.restore(folder)
    except (checkpoint.CheckpointError, ConfigError) as err:
        return error(f"--resume {args.resume}: {err}")
    description = dict(ckpt.settings)
    trainer = ckpt.trainer
    chunk = args.chunk_iterations or description.get("chunk_iterations")
    every = args.checkpoint_every or description.get("checkpoint_every", 1)
    keep = args.keep_checkpoints or description.get("keep_checkpoints", 2)
    description.update(chunk_iterations=chunk, checkpoint_every=every, keep_checkpoints=keep)
    description.setdefault("resumed_from_iterations", []).append(ckpt.iteration)
    num_runs = int(np.asarray(ckpt.runner.iteration).shape[0])
    config = trainer.config
    shard, placement = devices_note(num_runs)
    print(f"purejaxpg: resuming {trainer.algo.name} on {config.env_id} from {ckpt.path} at iteration "
          f"{ckpt.iteration}/{config.num_iterations} ({num_runs} run(s){placement})", flush=True)
    callback = print_progress(config.num_iterations, config.batch_size, num_runs, done=ckpt.iteration)
    return _run_checkpointed(trainer, ckpt.runner.key, ckpt.hparams, args.resume, description, chunk, every, keep,
                             callback, args.stop_after_chunks, resume=ckpt, shard=shard)


def _write_config(out: str, description: dict) -> None:
    """Write the run's settings ``description`` to OUT/config.json (creating OUT); in a run of
    several processes only process 0 writes."""
    if not is_writer():
        return
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as fh:
        json.dump(description, fh, indent=2)


def _run_checkpointed(trainer, keys, hparams, out: str, description: dict, chunk: int, every: int, keep: int,
                      callback, stop_after_chunks: int | None, resume=None, shard: str = "auto") -> int:
    """Run (or, given the restored checkpoint ``resume``, continue) a run checkpointed to
    OUT/checkpoints; when it stops early say how to continue it, else finish it (`_finish_train`).

    In a run of several processes every process runs the same chunks and checkpoint steps (they
    meet at the same collectives), but only process 0 writes OUT/checkpoints; the others write
    to a scratch folder deleted at the end."""
    import shutil
    import tempfile

    from purejaxpg import checkpoint

    scratch = None if is_writer() else tempfile.mkdtemp(prefix="purejaxpg-checkpoints-")
    try:
        done = checkpoint.run(trainer, keys, hparams, scratch or os.path.join(out, "checkpoints"), description,
                              chunk_iterations=chunk, every=every, keep=keep, callback=callback,
                              stop_after_chunks=stop_after_chunks, resume=resume, shard=shard)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if not done.finished:
        if not is_writer():
            return 0
        iteration = int(np.asarray(done.runner.iteration).reshape(-1)[0])
        print(f"stopped after {stop_after_chunks} chunk(s) at iteration {iteration}/{trainer.num_iterations}; "
              f"checkpoint {done.checkpoint}; continue with: python -m purejaxpg train --resume {out}", flush=True)
        return 0
    return _finish_train(out, description, done.metrics, done.steps_per_second, done.compile_seconds,
                         done.run_seconds)


def _finish_train(out: str | None, description: dict, metrics: dict, steps_per_second: float,
                  compile_seconds: float, run_seconds: float) -> int:
    """Print the final summary; write config.json, metrics.csv, summary.json, learning_curve.png
    (in a run of several processes, process 0 writes them)."""
    from purejaxpg import plotting, results

    algo_name, env_id, num_seeds = description["algo"], description["train"]["env_id"], description["seeds"]
    finals = results.final_returns(metrics)
    summary = {
        "algo": algo_name, "env_id": env_id, "seeds": num_seeds,
        "env_steps_per_seed": int(metrics["env_steps"][0, -1]),
        "final_return_per_seed": [float(x) for x in finals],
        "final_return": results.summarize(finals),
        "steps_per_second": steps_per_second,
        "compile_seconds": compile_seconds,
        "run_seconds": run_seconds,
    }
    print(f"final return (last 10% of iterations): mean {summary['final_return']['mean']:.2f}, "
          f"worst {summary['final_return']['worst']:.2f} | {steps_per_second:,.0f} steps/s | "
          f"compile {compile_seconds:.1f} s", flush=True)
    if out and is_writer():
        table = results.tidy(metrics, {"seed": np.arange(num_seeds)}).drop(columns="run")
        _write_config(out, description)
        table.to_csv(os.path.join(out, "metrics.csv"), index=False)
        with open(os.path.join(out, "summary.json"), "w") as fh:
            json.dump(summary, fh, indent=2)
        plotting.learning_curves({algo_name: metrics}, os.path.join(out, "learning_curve.png"),
                                 title=f"{algo_name} on {env_id}")
        saved = ", checkpoints/ (final state)" if os.path.isdir(os.path.join(out, "checkpoints")) else ""
        print(f"wrote {out}/config.json, metrics.csv, summary.json, learning_curve.png{saved}")
    return 0
