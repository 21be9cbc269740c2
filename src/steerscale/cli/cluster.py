"""CLI for running past one process: `sweep --shard K/N`, `sweep --shards N`, `sweep --backend ray`, `merge`.

Kept apart from ab.py (the one-process sweep): ab.py calls ``add_cluster_args`` on the sweep parser and
``cluster_sweep`` from cmd_sweep when one of these options is given; ``COMMANDS`` holds ``merge``.
See docs/scaling_out.md.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import ClusterOptions
from .fields import FolderOptions, ShardOptions
from ..errors import SteerscaleError
from .common import Command, load, print_summary, run_vectors
from .options import add_fields, config_from_args, flag_of

if TYPE_CHECKING:
    from ..config import SweepConfig


def add_cluster_args(p) -> None:
    g = p.add_argument_group("running past one process (docs/scaling_out.md)")
    add_fields(g, ShardOptions)  # --shard, --shards, --backend
    add_fields(g, ClusterOptions)


RAY_ONLY = ("address", "workers", "gpus_per_worker", "max_memory", "offload_folder")


def cluster_options(args) -> ClusterOptions:
    """The Ray options of the command line (their bounds were checked before anything started: check_options)."""
    return config_from_args(ClusterOptions, args)


def _merge_args(p) -> None:
    add_fields(p, FolderOptions, helps={"folder": "the shared --out folder of the shards"})


def wants_cluster(args) -> bool:
    if args.backend != "ray":
        given = [flag_of(n) for n in RAY_ONLY if getattr(args, n, None) is not None]
        if given:
            raise SteerscaleError(f"{given[0]} is an option of --backend ray; add --backend ray or leave it out")
    return bool(args.shard or args.backend != "local" or args.shards is not None)


def cluster_sweep(args, config: SweepConfig, items, vecs, train, out: Path) -> int:
    """cmd_sweep for --shard / --shards / --backend ray (inputs already read and checked by cmd_sweep)."""
    from ..sweep.plan import parse_shard
    from ..report.plots import plot_layer_sweep

    if args.shard:
        if args.backend != "local":
            raise SteerscaleError("--shard runs one unit in this process; leave out --backend (or --shard for Ray)")
        k, n = parse_shard(args.shard)
        if args.shards is not None and args.shards != n:
            raise SteerscaleError(f"--shard {args.shard} and --shards {args.shards} disagree; give only --shard K/N")
        from ..sweep.run import run_shard

        model, tok, info = load(args)
        if vecs is None:
            vecs = run_vectors(args, out, model, tok, info, train=train)
        rep = run_shard(model, tok, vecs, items, config=config, info=info, out_dir=out, shard=(k, n), progress=True)
        done = len(list((out / "shards").glob(f"shard-*of{n}.json")))
        print(f"shard {k}/{n}: {rep['points_computed']} points computed in {rep['seconds']:.1f} s "
              f"(items {rep['unit']['items'][0]}-{rep['unit']['items'][1] - 1}, layers {rep['unit']['layers']}); "
              f"{done} of {n} shards have finished; when all have, run: steerscale merge {out}")
        return 0
    if args.backend == "local":
        from ..sweep.run import run_sweep

        model, tok, info = load(args)
        if vecs is None:
            vecs = run_vectors(args, out, model, tok, info, train=train)
        result = run_sweep(model, tok, vecs, items, config=config, info=info, out_dir=out, shards=args.shards or 1)
    else:
        from ..sweep.backends.base import ModelRef, get_backend
        from ..sweep.run import drive_sweep

        if vecs is None:
            raise SteerscaleError("--backend ray: give --vectors (train them first with 'steerscale train'; "
                                  "the driver never loads the model)")
        from ..sweep.backends.resources import parse_max_memory

        opts = cluster_options(args)
        if (opts.max_memory or opts.offload_folder) and args.device != "auto":
            raise SteerscaleError(f"--max-memory / --offload-folder apply to --device auto (accelerate's device_map); "
                                  f"got --device {args.device}")
        gpus = opts.gpus_per_worker
        if gpus is None:
            gpus = 1 if args.device.startswith("cuda") or args.device == "auto" else 0
        offload = os.path.abspath(os.path.expanduser(opts.offload_folder)) if opts.offload_folder else None
        backend = get_backend("ray", address=opts.address, workers=opts.workers, gpus_per_worker=gpus,
                              cpus_per_worker=opts.cpus_per_worker, unit_timeout=opts.unit_timeout,
                              unit_retries=opts.unit_retries, max_memory=parse_max_memory(opts.max_memory),
                              offload_folder=offload)
        logging.getLogger("steerscale.sweep.backends").setLevel(logging.INFO)  # one line per finished unit
        try:
            ref = ModelRef(args.model, args.dtype, args.device, args.trust_remote_code)
            result = drive_sweep(backend, ref, items, vecs, config=config, out_dir=out, shards=args.shards,
                                 store_mode=opts.store)
        finally:
            backend.close()
    plot_layer_sweep(result.aggregate, out / "layer_sweep")
    print_summary(result)
    b = result.manifest.get("backend")
    if b:
        print(f"backend ray: {b['model_loads']} model loads on {len(b['hosts'])} host(s), {len(b['units_run'])} of "
              f"{result.manifest['plan']['n_shards']} units run now, {result.manifest['resume']['points_computed_now']} "
              f"points computed; {b.get('actors_died', 0)} workers died, {b.get('actors_replaced', 0)} replaced, "
              f"{b.get('units_requeued', 0)} units re-queued")
        for note in b.get("notes") or []:
            print(f"note: {note}")
    print(f"wrote {out}/items.csv, aggregate.csv, manifest.json, layer_sweep.png")
    return 0


def cmd_merge(args) -> int:
    from ..report.plots import plot_layer_sweep
    from ..sweep.units import merge

    out = Path(args.folder)
    result = merge(out)
    plot_layer_sweep(result.aggregate, out / "layer_sweep")
    print_summary(result)
    print(f"merged {result.manifest['plan']['n_shards']} shards; wrote {out}/items.csv, aggregate.csv, "
          f"manifest.json, layer_sweep.png")
    return 0


COMMANDS = {
    "merge": Command("build the tables of a sharded sweep from its points (no model is loaded)", _merge_args, cmd_merge,
                     "Check that every shard of a 'steerscale sweep --shard K/N' run folder has finished (names the "
                     "missing ones), then write items.csv, aggregate.csv, manifest.json and the plot, exactly as a "
                     "single-process run with the same plan."),
}
