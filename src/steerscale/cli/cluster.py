"""CLI for running past one process: `sweep --shard K/N`, `sweep --shards N`, `sweep --backend ray`, `merge`.

Kept apart from ab.py (the one-process sweep): ab.py calls ``add_cluster_args`` on the sweep parser and
``cluster_sweep`` from cmd_sweep when one of these options is given; ``COMMANDS`` holds ``merge``.
See docs/scaling_out.md.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SteerscaleError
from .common import Command, load, print_summary, run_vectors


def add_cluster_args(p) -> None:
    g = p.add_argument_group("running past one process (docs/scaling_out.md)")
    g.add_argument("--shard", default=None, metavar="K/N",
                   help="run only unit K of an N-unit plan into the shared --out folder (SLURM job arrays); "
                   "'steerscale merge OUT' builds the tables when all N are done")
    g.add_argument("--shards", type=int, default=None, metavar="N",
                   help="split the sweep into N units (item shards first, then layer groups; default 1, "
                   "or 2 per Ray worker)")
    g.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="where the units run: this process (default) or Ray actors (pip install 'steerscale[ray]')")
    g.add_argument("--address", default=None, help="Ray cluster address: 'auto' (running cluster), ray://HOST:PORT; "
                   "default a local Ray cluster")
    g.add_argument("--workers", type=int, default=None, help="Ray actors (model replicas); default as many as fit")
    g.add_argument("--gpus-per-worker", type=float, default=None,
                   help="GPUs each Ray actor reserves (default 1 with --device cuda/auto, else 0; 2 for a 70B in bf16 "
                   "with --device auto)")
    g.add_argument("--cpus-per-worker", type=int, default=1, help="CPUs (torch threads) per Ray actor (default 1)")
    g.add_argument("--store", default="shared", choices=["shared", "driver"],
                   help="Ray workers write points into --out on a shared filesystem (default), or return them "
                   "to the driver, which writes them")


def _merge_args(p) -> None:
    p.add_argument("folder", help="the shared --out folder of the shards")


def wants_cluster(args) -> bool:
    return bool(args.shard or args.backend != "local" or (args.shards is not None and args.shards != 1))


def cluster_sweep(args, config, items, vecs, train, out: Path) -> int:
    """cmd_sweep for --shard / --shards / --backend ray (inputs already read and checked by cmd_sweep)."""
    from ..plan import parse_shard
    from ..report import plot_layer_sweep

    if args.shards is not None and args.shards < 1:
        raise SteerscaleError(f"--shards {args.shards}: expected a positive number")
    if args.shard:
        if args.backend != "local":
            raise SteerscaleError("--shard runs one unit in this process; leave out --backend (or --shard for Ray)")
        k, n = parse_shard(args.shard)
        if args.shards is not None and args.shards != n:
            raise SteerscaleError(f"--shard {args.shard} and --shards {args.shards} disagree; give only --shard K/N")
        from ..sweep import run_shard

        model, tok, info = load(args)
        if vecs is None:
            vecs = run_vectors(args, out, model, tok, info, train)
        rep = run_shard(model, tok, vecs, items, config, info, out, (k, n), progress=True)
        done = len(list((out / "shards").glob(f"shard-*of{n}.json")))
        print(f"shard {k}/{n}: {rep['points_computed']} points computed in {rep['seconds']:.1f} s "
              f"(items {rep['unit']['items'][0]}-{rep['unit']['items'][1] - 1}, layers {rep['unit']['layers']}); "
              f"{done} of {n} shards have finished; when all have, run: steerscale merge {out}")
        return 0
    if args.backend == "local":
        from ..sweep import run_sweep

        model, tok, info = load(args)
        if vecs is None:
            vecs = run_vectors(args, out, model, tok, info, train)
        result = run_sweep(model, tok, vecs, items, config, info=info, out_dir=out, shards=args.shards or 1)
    else:
        from ..backends import ModelRef, drive_sweep, get_backend

        if vecs is None:
            raise SteerscaleError("--backend ray: give --vectors (train them first with 'steerscale train'; "
                                  "the driver never loads the model)")
        gpus = args.gpus_per_worker
        if gpus is None:
            gpus = 1 if args.device.startswith("cuda") or args.device == "auto" else 0
        backend = get_backend("ray", address=args.address, workers=args.workers, gpus_per_worker=gpus,
                              cpus_per_worker=args.cpus_per_worker)
        try:
            ref = ModelRef(args.model, args.dtype, args.device, args.trust_remote_code)
            result = drive_sweep(backend, ref, items, vecs, config, out, args.shards, args.store)
        finally:
            backend.close()
    plot_layer_sweep(result.aggregate, out / "layer_sweep")
    print_summary(result)
    b = result.manifest.get("backend")
    if b:
        print(f"backend ray: {b['workers']} workers on {len(b['hosts'])} host(s), {len(b['units_run'])} of "
              f"{result.manifest['plan']['n_shards']} units run now, {result.manifest['resume']['points_computed_now']} "
              f"points computed; {b['actors_died']} workers died, {b['units_requeued']} units re-queued")
    print(f"wrote {out}/items.csv, aggregate.csv, manifest.json, layer_sweep.png")
    return 0


def cmd_merge(args) -> int:
    from ..report import plot_layer_sweep
    from ..units import merge

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
