"""`rnnt recipe NAME`: build the corpus, train, export, quantize, evaluate and install a model, resumably."""

from __future__ import annotations

import argparse


def add_parser(subparsers, name: str) -> None:
    p = subparsers.add_parser(
        name, help="build a model end to end (default: the shipped English model)",
        description="Run a model recipe: corpus -> tokenizer -> train -> export -> evaluate -> install. "
                    "Re-running the same command resumes where it stopped.",
    )
    p.add_argument("name", nargs="?", default="default",
                   help="recipe preset: default, wordpiece or tiny (default: default)")
    p.add_argument("--work-dir", help="where corpus, run and bundles go (default: runs/recipe-NAME)")
    p.add_argument("--stages", help="comma-separated stages to run (default: all): "
                                    "corpus,tokenizer,train,export,evaluate,install")
    p.add_argument("--steps", type=int, help="training steps (overrides the preset)")
    p.add_argument("--corpus-hours", type=float, help="hours of synthesized speech (overrides the preset)")
    p.add_argument("--install-dir", help="where default.tflite and RESULTS.md go (default: the package's models/)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bars")
    p.set_defaults(run=run)


def run(args) -> int:
    import dataclasses

    from rnnt.cli import UsageError
    from rnnt.recipe import PRESETS, STAGES, Recipe

    if args.name not in PRESETS:
        raise UsageError(f"unknown recipe {args.name!r}; choose from {', '.join(PRESETS)}")
    cfg = PRESETS[args.name]
    if args.steps is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=args.steps))
    if args.corpus_hours is not None:
        cfg = dataclasses.replace(cfg, corpus_hours=args.corpus_hours)
    stages = tuple(s.strip() for s in args.stages.split(",")) if args.stages else STAGES
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise UsageError(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")
    recipe = Recipe(cfg, args.work_dir or f"runs/recipe-{cfg.name}", progress=args.progress,
                    install_dir=args.install_dir)
    state = recipe.run(stages)
    installed = state.get("installed")
    if installed and "install" in stages:
        print(f"installed {installed['mode']} bundle ({installed['bytes'] / 1e6:.1f} MB) at {installed['path']}")
    return 0
