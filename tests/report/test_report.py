"""Findings report: files, self-containment, headless Chromium rendering; reproduce config and resume."""

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from steerscale.analysis.model import analyze
from steerscale.analysis.verdicts import check_asymmetry_claim, check_depth_claim
from steerscale.errors import SteerscaleError
from steerscale.report.findings import write_report
from steerscale.scaling.comparison import check_scaling_claim, fit_scaling
from steerscale.scaling.imported import imported_points, imported_summary, load_results_table
from steerscale.scaling.points import point_from_analysis
from synth import bump, make_rows
from builders import OPENENDED, tiny_config, write_items

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or \
    ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    analyses = [
        analyze(make_rows(n_items=40, layers=range(0, 12, 2), n_layers=12, effect=bump(4, 0.25), model="small",
                          n_params=135_000_000), n_boot=200),
        analyze(make_rows(n_items=40, layers=range(0, 24, 3), n_layers=24, effect=bump(10, 0.12), model="medium",
                          n_params=1_700_000_000, seed=1), n_boot=200),
    ]
    imported = load_results_table("caa-llama2-chat")
    points = [point_from_analysis(a) for a in analyses] + imported_points(imported)
    scaling = fit_scaling(points, n_boot=100)
    claims = [c for a in analyses for c in (check_depth_claim(a), check_asymmetry_claim(a))]
    claims.append(check_scaling_claim(scaling))
    paths = write_report(out, analyses, scaling, claims, folders={a.model: out / a.model for a in analyses},
                         manifests={a.model: {"kind": "sweep", "seed": 0} for a in analyses},
                         imported=imported_summary(imported), config={"run": {"seed": 0}},
                         openended={"small": _tiny_openended(out / "small" / "openended")})
    return out, paths


def _tiny_openended(folder):
    """A real (tiny-model) open-ended sweep saved in `folder`, read back as the report reads it."""
    import torch

    from conftest import TinyTokenizer, make_model
    from steerscale.core.data import Prompt
    from steerscale.core.models import model_info
    from steerscale.config import OpenEndedConfig
    from steerscale.openended.tables import read_openended
    from steerscale.openended.run import run_openended

    model = make_model("llama")
    info = model_info(model, name="small")
    torch.manual_seed(0)
    cfg = OpenEndedConfig(layers=[0, 2], multipliers=[-4, 0, 4], template="plain", n_generate=1, max_new_tokens=4,
                          n_bootstrap=50, ce_bound=0.1)
    prompts = {k: [Prompt(f"{k} <request> & {i}", str(i), "") for i in range(3)] for k in ("harmful", "harmless")}
    run_openended(model, TinyTokenizer(), torch.randn(info.n_layers, info.hidden_size), prompts["harmful"],
                  prompts["harmless"], ["some neutral text.", "more of it here."], cfg, info=info, out_dir=folder,
                  progress=False)
    return dict(read_openended(folder), folder=folder)


def test_report_files(report):
    out, paths = report
    for name in ("depth", "asymmetry", "scaling"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
        assert (out / "figures" / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    for m in ("small", "medium"):
        for name in ("layer_sweep", "heatmap"):
            assert (out / m / f"{name}.png").is_file() and (out / m / f"{name}.svg").is_file()
    html = paths["html"].read_text()
    srcs = re.findall(r"<img src='([^']*)'", html)
    assert len(srcs) == 2 * 2 + 3 + 2 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "href=" not in html and "<link" not in html and "<script" not in html  # nothing external
    for word in ("supported", "inconclusive", "Manifest", "Llama-2-7b-chat (CAA)", "layer / n_layers",
                 "Scaling points", "Per-item steerability", "Open-ended refusal and capability cost",
                 "Example generations", "harmful &lt;request&gt; &amp; 0", "CE ≤ 0.1"):
        assert word in html, word
    assert "<request>" not in html  # prompts and generations are escaped
    md = paths["md"].read_text()
    pngs = re.findall(r"\]\(([^)]+\.png)\)", md)
    assert len(pngs) == 9 and all((out / p).is_file() for p in pngs)
    assert "small/openended/tradeoff.png" in pngs and "small/openended/openended_layers.png" in pngs
    summary = json.loads((out / "summary.json").read_text())
    oe = summary["openended"][0]
    assert oe["model"] == "small" and [v["sign"] for v in oe["verdicts"]] == ["negative", "positive"]
    assert len(oe["rows"]) == 2 * 2 and oe["ce_bound"] == 0.1
    assert {c["verdict"] for c in summary["claims"]} <= {"supported", "not supported", "inconclusive"}
    assert summary["scaling"]["fits"]["exp"]["status"] in ("ok", "not enough points")


PROBE = """
<script>
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message || e.type)); }, true);
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0); });
  var out = document.createElement('pre');
  out.id = '__probe';
  out.textContent = JSON.stringify({images: imgs.length, broken: bad.map(function (i) { return i.alt; }),
                                    errors: window.__errors, title: document.title});
  document.body.appendChild(out);
});
</script>
"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium; .ci/run installs it)")
def test_report_renders_in_headless_chromium(report):
    out, paths = report
    html = paths["html"].read_text()
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.html"
        probe.write_text(html.replace("<head>", "<head>" + PROBE, 1))
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", f"--user-data-dir={tmp}/profile", "--enable-logging=stderr", "--v=0",
               "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="__probe">(.*?)</pre>', r.stdout, re.S)
    assert m, f"no probe output; chromium rc={r.returncode}, stderr tail: {r.stderr[-800:]}"
    res = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert res["images"] == 9 and res["broken"] == [] and res["errors"] == []
    console = [l for l in r.stderr.splitlines() if "CONSOLE" in l and ("Error" in l or "Uncaught" in l)]
    assert console == [], console
    assert res["title"].startswith("steerscale")


# ---------------------------------------------------------------- the document model and its two renderers

HOSTILE = "<script>alert('x')</script> & a|b [link](http://x) `tick`\nsecond line"


def _hostile_document(png):
    from steerscale.report.document import (
        ClaimsTable, Code, Details, Document, Em, Figure, Notes, Paragraph, Preformatted, Section, Strong, Table,
        Verdict, Verdicts,
    )

    v = Verdict("supported", HOSTILE, HOSTILE, HOSTILE, model=HOSTILE)
    return Document(HOSTILE, [
        Paragraph(["plain ", HOSTILE, " ", Em(HOSTILE), " ", Strong(HOSTILE), " ", Code("<model>/items.csv")]),
        Paragraph("only in html", only="html"),
        Paragraph("only in markdown", only="markdown"),
        Section(HOSTILE, anchor="h'x", blocks=[
            ClaimsTable([v]), Verdicts([v]), Notes([HOSTILE]), Notes([]),
            Table([HOSTILE, "n"], [[HOSTILE, 1.5]]), Figure(png, HOSTILE),
            Details(HOSTILE, [Preformatted("```\n" + HOSTILE)]),
            Section("sub", level=3, md_heading=False, blocks=[Paragraph("below an html-only heading")])]),
        Section("manifest", anchor="manifest"),
    ])


def test_document_escapes_every_string_in_both_formats(tmp_path):
    from steerscale.report.plots import plot_cosine_heatmap
    from steerscale.report.html import render_html
    from steerscale.report.markdown import render_markdown

    png = plot_cosine_heatmap([[1.0, 0.0], [0.0, 1.0]], tmp_path / "figs" / "cos")[0]
    doc = _hostile_document(png)
    html = render_html(doc)
    assert "<script>" not in html and "alert(&#x27;x&#x27;)" in html  # text and attributes escaped
    assert "<h2 id='h&#x27;x'>" in html and "<code>&lt;model&gt;/items.csv</code>" in html
    assert "only in html" in html and "only in markdown" not in html and "<h3>sub</h3>" in html
    assert html.count("<div class='note'>") == 1 and html.count("data:image/png;base64,") == 1
    assert html.count("<span class='verdict' style='background:#1e8449'>supported</span>") == 2
    md = render_markdown(doc, tmp_path)
    before, fenced, after = md.split("````\n")  # a fenced block shows its text literally (CommonMark), nothing else
    assert fenced.startswith("```\n<script>") and "<script>" not in before + after and "&lt;script&gt;" in before
    assert "only in markdown" in md and "only in html" not in md and "sub" not in md.split("\n")
    # one line per table row, pipes escaped; alt text cannot close the link; figure linked relative to the base
    row = next(l for l in md.splitlines() if l.endswith(" | 1.5 |"))
    assert row.startswith("| &lt;script&gt;") and row.count(" | ") == 1 and "a\\|b" in row and "second line" in row
    assert f"\\[link\\](http://x) `tick` second line]({png.relative_to(tmp_path)})" in md
    assert "`<model>/items.csv`" in md  # a code span shows its text literally
    assert md.count("> &lt;script&gt;") == 1 and md.startswith("# &lt;script&gt;")


def test_document_add_before_an_anchor_and_code_refuses_backticks():
    from steerscale.report.document import Code, Document, Paragraph, Section

    doc = Document("t", [Section("a", anchor="a"), Section("manifest", anchor="manifest")])
    doc.add(Section("new", anchor="new"), before="manifest").add(Paragraph("end"), before="no-such-anchor")
    assert [getattr(b, "anchor", None) for b in doc.blocks] == ["a", "new", "manifest", None]
    with pytest.raises(ValueError, match="backtick"):
        Code("a`b")


def test_write_report_takes_extra_sections(tmp_path):
    """The hook for new report parts: a Section passed to write_report shows in both formats, before the manifest."""
    from steerscale.report.document import Figure, Paragraph, Section
    from steerscale.report.plots import plot_cosine_heatmap

    a = analyze(make_rows(n_items=8, layers=[0, 2], n_layers=4, effect=bump(2, 0.2), model="m"), n_boot=20)
    scaling = fit_scaling([point_from_analysis(a)], n_boot=10)
    png = plot_cosine_heatmap([[1.0]], tmp_path / "out" / "figures" / "extra")[0]
    extra = Section("Extra <part>", anchor="extra", blocks=[Paragraph("made elsewhere"), Figure(png, "extra figure")])
    paths = write_report(tmp_path / "out", [a], scaling, [check_depth_claim(a)], sections=[extra])
    html, md = paths["html"].read_text(), paths["md"].read_text()
    assert html.index("<h2 id='extra'>Extra &lt;part&gt;</h2>") < html.index("<h2 id='manifest'>")
    assert html.count("data:image/png;base64,") == 2 + 3 + 1 and paths["figures"][-1] == png
    assert "## Extra &lt;part&gt;\n\nmade elsewhere\n\n![extra figure](figures/extra.png)\n" in md


# ---------------------------------------------------------------- reproduce (tiny model, no download)


def test_reproduce_runs_resumes_and_reports(tmp_path, tiny_loader):
    from steerscale.reproduce.run import reproduce
    from steerscale.reproduce.report import render

    cfg = tiny_config(tmp_path)
    out = tmp_path / "out"
    s1 = reproduce(cfg, out, progress=False)
    assert [r["status"] for r in s1["runs"]] == ["ran", "ran"] and tiny_loader == ["tiny-a", "tiny-b"]
    for sub in ("tiny-a", "tiny-b"):
        man = json.loads((out / sub / "manifest.json").read_text())
        assert man["config"]["layers"] == [0, 2] and man["reproduce"]["expected_rows"] == 2 * 3 * 8
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    assert any(c["claim"].startswith("peak effect decays") and "not enough points" in c["why"] for c in s1["claims"])
    # same config: nothing runs again
    s2 = reproduce(cfg, out, progress=False)
    assert [r["status"] for r in s2["runs"]] == ["reused", "reused"] and len(tiny_loader) == 2
    # a changed config is not "complete" (its hash differs), so it would run again
    from steerscale.reproduce.run import config_hash, is_complete
    from steerscale.reproduce.config import load_config

    c1, c2 = load_config(cfg), load_config(tiny_config(tmp_path, "[-2.0, 0.0, 2.0]"))
    assert is_complete(out / "tiny-a", config_hash(c1, c1.models[0]))
    assert config_hash(c2, c2.models[0]) != config_hash(c1, c1.models[0])
    assert not is_complete(out / "tiny-a", config_hash(c2, c2.models[0]))
    # `report` re-renders from the folder without running anything
    (out / "report.html").unlink()
    s3 = render(out)
    assert len(tiny_loader) == 2 and (out / "report.html").is_file()
    assert s3["models"][0]["peaks"]["negative"]["layer"] in (0, 2)


def test_reproduce_with_openended_runs_resumes_and_reports(tmp_path, tiny_loader):
    from steerscale.reproduce.config import load_config
    from steerscale.reproduce.run import reproduce, run_model
    from steerscale.reproduce.report import render

    cfg = tiny_config(tmp_path, extra=OPENENDED.format(max_new_tokens=3))
    out = tmp_path / "out"
    s1 = reproduce(cfg, out, progress=False)
    assert [(r["status"], r["openended"]) for r in s1["runs"]] == [("ran", "ran")] * 2 and len(tiny_loader) == 2
    for sub in ("tiny-a", "tiny-b"):
        oe = out / sub / "openended"
        for f in ("aggregate.csv", "generations.csv", "logodds.csv", "ce.csv", "max_multiplier.csv", "manifest.json",
                  "tradeoff.png", "openended_layers.png"):
            assert (oe / f).is_file(), f
        man = json.loads((oe / "manifest.json").read_text())
        assert man["points"] == [[0, 0], [2, 2]] and man["config"]["template"] == "plain"
        assert man["vectors"] == json.loads((out / sub / "manifest.json").read_text())["vectors"]  # the A/B vectors
        assert man["prompts"] == {"n_harmful_logodds": 3, "n_harmless_logodds": 3, "n_generate_per_kind": 1,
                                  "n_neutral": 2}
    html = (out / "report.html").read_text()
    assert html.count("<h3>tiny a: open-ended refusal and capability cost</h3>") == 1
    assert html.count("data:image/png;base64,") == 2 * 2 + 3 + 2 * 2
    assert "Open-ended refusal and capability cost" in (out / "report.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert [o["model"] for o in summary["openended"]] == ["tiny a", "tiny-b"]
    assert {v["verdict"] for o in s1["openended"] for v in o["verdicts"]} <= {"supported", "not supported", "inconclusive"}
    # same config: neither part runs again, the model is not even loaded (run_model: no report rendering here)
    c1, c2 = load_config(cfg), load_config(tiny_config(tmp_path, extra=OPENENDED.format(max_new_tokens=2)))
    m1, m2 = c1.models[1], c2.models[1]
    assert run_model(c1, m1, out / "tiny-b", progress=False)["openended"] == "reused" and len(tiny_loader) == 2
    # only the [openended] section changed: the A/B sweep is kept, the open-ended sweep runs again
    r = run_model(c2, m2, out / "tiny-b", progress=False)
    assert (r["status"], r["openended"]) == ("reused", "ran") and len(tiny_loader) == 3
    # `report` re-renders the section (and its figures) without running anything
    (out / "report.html").unlink()
    (out / "tiny-b" / "openended" / "tradeoff.png").unlink()
    s2 = render(out)
    assert len(tiny_loader) == 3 and (out / "tiny-b" / "openended" / "tradeoff.png").is_file()
    assert "tiny-b: open-ended refusal and capability cost" in (out / "report.html").read_text()
    assert len(s2["openended"]) == 2


def test_default_config_and_errors(tmp_path):
    from steerscale.reproduce.config import load_config
    from steerscale.reproduce.run import model_layers

    cfg = load_config()
    assert [m.spec for m in cfg.models] == ["smollm2-135m"] and cfg.imports == []
    assert cfg.sweep["multipliers"] == [-1.0, 0.0, 1.0] and model_layers(cfg.models[0].sweep, 30) == list(range(30))
    assert cfg.data == {"train": "refusal-train", "test": "refusal-test", "train_limit": 200, "test_limit": 50,
                        "test_sets": ["refusal-test-ood"]}
    assert cfg.run["protocol"] == "steerscale-default" and cfg.models[0].protocol == "steerscale-default"
    oe = cfg.openended
    assert model_layers(oe, 30) == list(range(0, 30, 3)) and oe["multipliers"] == [-4.0, 0.0, 4.0]
    assert (oe["n_logodds"], oe["n_generate"], oe["max_new_tokens"], oe["n_neutral"], oe["ce_bound"]) == (24, 2, 24, 6, 0.1)
    bad = tmp_path / "bad.toml"
    for text, msg in [
        ("[sweep]\nlayerz = 3\n[[models]]\nspec='x'\n", r"bad\.toml: \[sweep\] unknown key 'layerz'"),
        ("[run]\nseed = 0\n", r"no \[\[models\]\] listed"),
        ("[[models]]\nname='x'\n", r"\[\[models\]\] #1: missing key 'spec'"),
        ("[sweep]\nmultipliers=[-1, 1]\n[[models]]\nspec='x'\n", r"multipliers must include 0"),
        ("[[models]]\nspec='x'\n[[imports]]\npath='a.csv'\n", r"\[\[imports\]\] #1: missing key 'table'"),
        ("[[models]\nspec='x'\n", r"bad\.toml: invalid TOML"),
        ("[[models]]\nspec='x'\n[[models]]\nspec='x'\n", r"name 'x' is used twice"),
        ("[openended]\nn_prompts = 3\n[[models]]\nspec='x'\n", r"\[openended\] unknown key 'n_prompts'"),
        ("[openended]\nmultipliers = [-4, 4]\n[[models]]\nspec='x'\n", r"\[openended\]: multipliers must include 0"),
        ("[openended]\nlayer_stride = 0\n[[models]]\nspec='x'\n", r"\[openended\]: layer_stride 0"),
        ("[openended]\nn_generate = -1\n[[models]]\nspec='x'\n", r"\[openended\]: n_generate -1: expected an integer"),
        ("[openended]\nmax_new_tokens = 0\n[[models]]\nspec='x'\n", r"max_new_tokens 0: expected an integer >= 1"),
        ("[openended]\nce_bound = 'low'\n[[models]]\nspec='x'\n", r"\[openended\]: ce_bound 'low'"),
        ("openended = 3\n[[models]]\nspec='x'\n", r"\[openended\] must be a table"),
    ]:
        bad.write_text(text)
        with pytest.raises(SteerscaleError, match=msg):
            load_config(bad)


def test_reproduce_fails_fast_on_bad_import(tmp_path, tiny_loader):
    from steerscale.reproduce.run import reproduce

    (tmp_path / "pub.csv").write_text("model,n_params\nx,7B\n")
    cfg = tiny_config(tmp_path, extra='[[imports]]\ntable = "pub.csv"\n')
    with pytest.raises(SteerscaleError, match=r"pub\.csv: header lacks column"):
        reproduce(cfg, tmp_path / "out", progress=False)
    assert tiny_loader == []


@pytest.mark.slow
def test_reproduce_smollm2_short(tmp_path):
    """End to end on the bundled SmolLM2: two layers, a handful of items."""
    from steerscale.reproduce.run import reproduce

    cfg = tmp_path / "smol.toml"
    cfg.write_text('[run]\nn_bootstrap = 100\n[data]\ntrain_limit = 8\ntest_limit = 8\n'
                   '[sweep]\nlayers = [4, 12]\nbatch_size = 8\n[[models]]\nspec = "smollm2-135m"\n'
                   '[[imports]]\ntable = "caa-llama2-chat"\n')
    s = reproduce(cfg, tmp_path / "out", progress=False)
    assert s["runs"][0]["status"] == "ran"
    m = s["models"][0]
    assert 0 <= m["baseline"] <= 1 and m["peaks"]["negative"]["layer"] in (4, 12)
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5 and "Llama-2-13b-chat (CAA)" in html
