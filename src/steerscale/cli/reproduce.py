"""Commands over a TOML config of several models: reproduce (run, analyse, report) and report (re-render)."""

from __future__ import annotations

from pathlib import Path

from .fields import FolderOptions, ReproduceOptions
from ..errors import SteerscaleError
from ..io.guards import check_input_file, check_output_folder
from .common import Command
from .options import add_fields


def _reproduce_args(p) -> None:
    add_fields(p, ReproduceOptions)


def print_findings(summary: dict, quiet: bool = False) -> None:
    """The run's findings on stdout; with `quiet`, only the results paths."""
    if quiet:
        print(f"wrote {summary['report_html']} and {summary['report_md']}")
        return
    for r in summary["runs"]:
        print(f"{r['model']}: {r['status']} ({r['folder']})")
    for m in summary["models"]:
        peaks = "; ".join(f"{k} peak layer {p['layer']} (depth {p['depth']:.2f}) delta {p['delta']:+.3f} "
                          f"[{p['ci'][0]:+.3f}, {p['ci'][1]:+.3f}]" for k, p in m["peaks"].items())
        print(f"{m['model']}: baseline {m['baseline']:.3f}; {peaks}")
    for c in summary["claims"] + [v for oe in summary.get("openended", []) for v in oe["verdicts"]]:
        print(f"  [{c['verdict']}] {c['claim']} ({c.get('model', '')}): {c['why']}")
    print(f"wrote {summary['report_html']} and {summary['report_md']}")


def _progress(args) -> bool:
    """Stage lines (INFO, plain text) unless --quiet; tqdm bars only on a terminal, so a SLURM .out file holds
    no carriage returns or cursor codes."""
    import logging
    import sys

    quiet = getattr(args, "quiet", False)
    logging.getLogger("steerscale.reproduce").setLevel(logging.WARNING if quiet else logging.INFO)
    return not quiet and sys.stderr.isatty()


def cmd_reproduce(args) -> int:
    from ..reproduce.run import reproduce
    from ..reproduce.config import default_config_path

    if args.print_config:
        print(default_config_path().read_text(), end="")
        return 0
    if args.config is not None:
        check_input_file(args.config, "a TOML config file")
    check_output_folder(args.out)
    summary = reproduce(args.config, args.out, force=args.force, only=args.only, progress=_progress(args))
    if args.only is not None:
        for r in summary["runs"]:  # the results path of this node's model (kept under --quiet)
            print(f"{r['model']}: {r['status']} ({r['folder']})")
        return 0
    print_findings(summary, quiet=getattr(args, "quiet", False))
    return 0


def _report_args(p) -> None:
    add_fields(p, FolderOptions, helps={"folder": "a 'steerscale reproduce' output folder"})


def cmd_report(args) -> int:
    from ..reproduce.report import render

    folder = Path(args.folder)
    if not folder.is_dir():
        raise SteerscaleError(f"{folder}: no such folder; expected a 'steerscale reproduce' output folder")
    check_output_folder(folder, "folder")
    _progress(args)
    print_findings(render(folder), quiet=getattr(args, "quiet", False))
    return 0


COMMANDS = {
    "reproduce": Command("the paper's experiments (layer sweep, asymmetry, scaling) and a report", _reproduce_args,
                         cmd_reproduce,
                         "Train vectors and sweep every model of a TOML config (each in its own subfolder; a model "
                         "whose folder already holds complete results for the same config is reused), then analyse "
                         "peaks, asymmetry and the scaling fit and write report.html and report.md."),
    "report": Command("re-render the report of a 'steerscale reproduce' output folder", _report_args, cmd_report,
                      "Re-analyse the model folders of a reproduce output folder (no model is run) and write "
                      "report.html, report.md, figures/ and summary.json again."),
}
