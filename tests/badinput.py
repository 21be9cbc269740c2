"""The bad-input tests' shared machinery (not a test module): the read-only inputs, the builder of bad inputs, the
catalogue's runner and its check against docs/errors.md.

Each stage's cases are in tests/<stage>/test_bad_inputs_<stage>.py (config.py's at the top, beside test_config.py):
a case lives with the stage whose code raises its error, so a change to one stage's checks runs one file. Every
catalogue case exits 2 with one line naming the file/field/value, and has a row in docs/errors.md that names the
file holding it.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from steerscale import cli
from steerscale.core.vectors import SteeringVectors
from steerscale.io import store
from tinydir import BadInputFolder, caa, save_tiny_model, write_dataset

TESTS = Path(__file__).resolve().parent
SRC = str(TESTS.parent / "src")
ERRORS_DOC = TESTS.parent / "docs" / "errors.md"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Shared, read-only inputs: a tiny model dir (2 layers, hidden 32), a dataset, good vectors (`vectors`), and
    vectors that name a selected layer (`direction`, for ablation, orthogonalize and export)."""
    d = tmp_path_factory.mktemp("bad")
    b = {"dir": d, "model": save_tiny_model(d / "model", layers=2, hidden=32)}
    b["data"] = write_dataset(d / "data.json", 4)
    b["vectors"] = SteeringVectors(torch.randn(2, 32), {"model": "model"}).save(d / "good.safetensors")
    b["direction"] = SteeringVectors(torch.randn(2, 32), {"model": "model", "selected_layer": 1}).save(
        d / "direction.safetensors")
    return b


def stage_file(stage: str) -> str:
    """The file (relative to tests/) that holds the bad-input cases of `stage` (a package, or "config")."""
    return "test_bad_inputs_config.py" if stage == "config" else f"{stage}/test_bad_inputs_{stage}.py"


def _raised_in(tb) -> str:
    """The stage whose code raised: the package (or top module) of the innermost steerscale frame of `tb`."""
    parts = [Path(f.filename).parts for f in traceback.extract_tb(tb) if "steerscale" in Path(f.filename).parts[:-1]]
    rel = parts[-1][len(parts[-1]) - parts[-1][::-1].index("steerscale"):]  # below the last steerscale/ folder
    return rel[0] if len(rel) > 1 else Path(rel[0]).stem


def run_catalogue(c: "Ctx", capsys, build, fragment, test_file: str) -> None:
    """Build the case's argv in `c`, run the CLI in-process: exit 2, and the last line of stderr (progress bars may
    come before it) is one 'steerscale <command>: ...' line holding `fragment`, with no traceback or numpy repr.
    The error was raised by the stage whose file holds the case (`test_file`; argparse's own errors are cli's)."""
    raised = []
    real = cli._one_line

    def spy(msg, *a, **k):  # called inside cli.main's `except SteerscaleError`: the error's traceback is at hand
        raised.append(_raised_in(sys.exc_info()[2]))
        return real(msg, *a, **k)

    c.mp.setattr(cli, "_one_line", spy)
    argv = build(c)
    capsys.readouterr()
    rc = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert rc == 2, err
    assert fragment in last, err
    assert "Traceback" not in err and last.startswith("steerscale ")
    assert "np.uint64" not in last and "np.float" not in last
    stage = raised[-1] if raised else "cli"
    here = Path(test_file).resolve().relative_to(TESTS).as_posix()
    assert here == stage_file(stage), f"raised in {stage}/: the case belongs in tests/{stage_file(stage)}"


def check_documented(catalogue: list, test_file: str) -> None:
    """Every id of `catalogue` has a row in docs/errors.md (``| `id` | ...``) that names `test_file`, the file
    holding it (as tests/<stage>/<name>.py, relative to tests/)."""
    where = Path(test_file).resolve().relative_to(TESTS).as_posix()
    rows = {line.split("`")[1]: line for line in ERRORS_DOC.read_text().splitlines() if line.startswith("| `")}
    missing = [i for i, _, _ in catalogue if i not in rows]
    elsewhere = [i for i, _, _ in catalogue if i in rows and f"`{where}`" not in rows[i]]
    assert catalogue and not missing and not elsewhere, (missing, elsewhere)


def catalogue_tests(catalogue: list, test_file: str):
    """The two tests of a stage's catalogue, for its test module to bind at top level:
    ``test_catalogue, test_catalogue_is_documented = catalogue_tests(CATALOGUE, __file__)`` (the module imports the
    ``base`` fixture). `test_catalogue` runs each case (``run_catalogue``); `test_catalogue_is_documented` checks
    its rows in docs/errors.md (``check_documented``)."""

    @pytest.mark.parametrize("build,fragment", [pytest.param(b, f, id=i) for i, b, f in catalogue])
    def test_catalogue(base, tmp_path, monkeypatch, capsys, build, fragment):
        run_catalogue(Ctx(base, tmp_path, monkeypatch), capsys, build, fragment, test_file)

    def test_catalogue_is_documented():
        check_documented(catalogue, test_file)

    return test_catalogue, test_catalogue_is_documented


def run_cli(*args, env=None, limit_fsize=None):
    """The real command in a subprocess (exit codes, tracebacks, kill -9), optionally under a file-size limit."""
    e = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    e["PYTHONPATH"] = os.pathsep.join([SRC, str(TESTS)] + ([os.environ["PYTHONPATH"]] if os.environ.get(
        "PYTHONPATH") else []))
    pre = None
    if limit_fsize is not None:
        def pre():
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_fsize, limit_fsize))
    return subprocess.run([sys.executable, "-m", "steerscale.cli", *map(str, args)], capture_output=True, text=True,
                          env=e, timeout=300, preexec_fn=pre)


def read_rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class Ctx(BadInputFolder):
    """Builds one bad input (and the argv that feeds it to a command) in a fresh folder."""

    def vectors(self, tensor, name="v.safetensors", meta=None) -> str:
        p = self.tmp / name
        save_file({"vectors": tensor}, str(p), metadata=meta or {"steerscale": json.dumps({"model": "other-model"})})
        return str(p)

    def vecs(self, meta: dict, t=None, name="v.safetensors") -> str:
        t = torch.randn(2, 32) if t is None else t
        return str(SteeringVectors(t, meta).save(self.tmp / name))

    def sv_file(self, tensors: dict, name="sv.safetensors") -> str:
        save_file(tensors, str(self.tmp / name), metadata={"layer_type": "decoder_block"})
        return str(self.tmp / name)

    def dir(self, name) -> str:
        p = self.tmp / name
        p.mkdir()
        return str(p)

    def model_copy(self, name="m2", **kw) -> Path:
        return save_tiny_model(self.tmp / name, layers=2, hidden=32, **kw)

    # ------------------------------------------------------------------ argv of each command

    def train(self, data, *extra):
        return ["train", "--model", str(self.b["model"]), "--data", data, "--out", str(self.tmp / "v.safetensors"),
                *extra]

    def sweep(self, *extra, model=None, vectors=None, data=None, out=None):
        args = ["sweep", "--model", str(model or self.b["model"]), "--data", str(data or self.b["data"]),
                "--layers", "0", "--multipliers=0,1", "--out", str(out or self.tmp / "run"), *extra]
        if vectors is not False:
            args += ["--vectors", str(vectors or self.b["vectors"])]
            if model is not None and vectors is None:  # the shared vectors were made on base["model"]
                args += ["--allow-foreign-vectors"]
        return args

    def toml(self, text: str) -> list:
        return ["reproduce", "--config", self.file("c.toml", text), "--out", str(self.tmp / "rep")]

    def model_toml(self, extra: str) -> list:
        return self.toml(f'[[models]]\nspec = "{self.b["model"]}"\n{extra}\n')

    def imported(self) -> str:
        """steering-vectors vectors covering layer 1 only, imported for a 2-layer model."""
        src = self.sv_file({"layer_activations.1": torch.randn(32)})
        out = self.tmp / "imp.safetensors"
        assert cli.main(["import", src, "--n-layers", "2", "--out", str(out)]) == 0
        return str(out)

    def export(self, *extra, vectors=None, out=None):
        return ["export", str(vectors or self.b["direction"]), str(out or self.tmp / "cv.gguf"), *extra]

    def imp(self, src, *extra, out=None):
        return ["import", str(src), "--n-layers", "2", "--out", str(out or self.tmp / "o.safetensors"), *extra]

    def generate(self, *extra):
        return ["generate", "--model", str(self.b["model"]), "--layers", "1", "--max-new-tokens", "2", "hi", *extra]

    def ortho(self, *extra, model=None, direction=None, out=None):
        return ["orthogonalize", "--model", str(model or self.b["model"]), "--direction",
                str(direction or self.b["direction"]), "--out", str(out or self.tmp / "orth"), *extra]

    # ------------------------------------------------------------------ inputs that are not what they seem

    def q8k_gguf(self) -> str:
        import gguf

        p = self.tmp / "q8k.gguf"
        w = gguf.GGUFWriter(str(p), "llama")
        w.add_block_count(1)
        w.add_embedding_length(256)
        w.add_tensor("token_embd.weight", np.zeros((4, 256), dtype=np.float32))
        w.add_tensor("blk.0.attn_q.weight", np.zeros((1, 292), dtype=np.uint8),
                     raw_dtype=gguf.GGMLQuantizationType.Q8_K)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return str(p)

    def pickle_only_model(self) -> str:
        d = self.tmp / "pickled"
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"model_type": "llama"}))
        (d / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
        return str(d)

    def model_with(self, edit) -> str:
        d = self.model_copy()
        edit(d)
        return str(d)

    def bloom(self) -> str:
        return str(save_tiny_model(self.tmp / "bloom", layers=2, hidden=32, model_type="bloom"))

    def truncated(self) -> str:
        raw = Path(self.b["vectors"]).read_bytes()
        return self.file("trunc.safetensors", raw=raw[: len(raw) - 40])

    def unwritable(self):
        real = store._write_all

        def deny(f, data):
            if ".steerscale-write-test" in f.name:
                raise PermissionError(errno.EACCES, "Permission denied")
            real(f, data)

        self.mp.setattr(store, "_write_all", deny)
        return self.sweep()

    def changed_config(self):
        assert cli.main(self.sweep()) == 0
        return self.sweep("--positions", "instruction_end")

    def changed_vectors(self):
        args = ["sweep", "--model", str(self.b["model"]), "--data", str(self.b["data"]), "--train-data",
                str(self.b["data"]), "--layers", "0", "--multipliers=0,1", "--out", str(self.tmp / "run")]
        assert cli.main(args) == 0
        return args + ["--normalize", "unit"]

    def other_vectors_same_folder(self):
        assert cli.main(self.sweep()) == 0
        return self.sweep(vectors=self.vectors(torch.ones(2, 32), "v2.safetensors",
                                         meta={"steerscale": json.dumps({"model": "model"})}))

    def fifo(self, name="fifo.json") -> str:
        p = self.tmp / name
        os.mkfifo(p)
        return str(p)

    def loop(self, name="loop.json") -> str:
        p = self.tmp / name
        os.symlink(p, p)
        return str(p)

    def broken_link(self, name="dangling.json") -> str:
        p = self.tmp / name
        os.symlink(self.tmp / "gone", p)
        return str(p)

    def unreadable(self, path: str) -> str:
        """Tests run as root (permissions do not stop root): simulate EACCES where inputs are opened."""
        from steerscale.io import guards

        real = guards._open_fd

        def deny(p):
            if str(p) == path:
                raise PermissionError(errno.EACCES, "Permission denied")
            return real(p)

        self.mp.setattr(guards, "_open_fd", deny)
        return path

    def limit_env(self, mb: str) -> None:
        self.mp.setenv("STEERSCALE_MAX_INPUT_MB", mb)

    def small_limit(self):
        self.limit_env("0.0001")  # ~100 bytes
        return self.train(str(self.b["data"]))

    def bad_limit_env(self):
        self.limit_env("lots")
        return self.train(str(self.b["data"]))

    def footnote(self) -> str:
        q = "Question 0?\n(C) footnote: see the appendix\n\nChoices:\n(A) yes\n(B) no"
        return self.file("d.json", obj=[dict(caa(0), question=q, answer_matching_behavior="(C)")])

    def gpt2(self) -> Path:
        return save_tiny_model(self.tmp / "gpt2", layers=2, hidden=32, model_type="gpt2")

    def long_question(self, n=600) -> str:
        return self.file("long.json", obj=[dict(caa(0), question="x" * n + "\n\nChoices:\n(A) a\n(B) b")])

    def zero_layers(self) -> str:
        d = self.model_copy("zero")
        cfg = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps(dict(cfg, num_hidden_layers=0)))
        return str(d)

    def chdir_with_models(self, spec: str):
        (self.tmp / "models").mkdir()
        self.mp.chdir(self.tmp)
        return self.sweep(model=spec)

    def generate_steered(self, *extra, prompt="hello"):
        return ["generate", "--model", str(self.b["model"]), "--vectors", str(self.b["vectors"]), "--layers", "0",
                "--template", "plain", prompt, *extra]

    def openended(self, *extra):
        return ["openended", "--model", str(self.b["model"]), "--vectors", str(self.b["vectors"]), "--template",
                "plain", "--layers", "0", "--multipliers=0,1", "--n-logodds", "2", "--n-generate", "0", "--n-neutral",
                "0", "--out", str(self.tmp / "oe"), *extra]

    def prompts(self, records, name="p.json") -> str:
        return self.file(name, obj=records)

    def similarity(self, *specs, out=None):
        return ["similarity", *specs, "--out", str(out or self.tmp / "sim")]

    def transfer(self, *extra):
        return ["transfer", "--vectors", str(self.b["vectors"]), "--source-model", str(self.b["model"]), "--model",
                str(self.b["model"]), "--layers", "0", "--template", "plain", *extra]

    def report_folder(self, edit=None) -> str:
        """A 'steerscale reproduce' output folder built from one tiny sweep (model name 'm'), optionally damaged."""
        from steerscale.reproduce.config import load_config

        cfg = self.tmp / "cfg.toml"
        cfg.write_text(f'[run]\nn_bootstrap = 20\n[data]\ntrain = "{self.b["data"]}"\ntest = "{self.b["data"]}"\n'
                       f'[sweep]\ntemplate = "plain"\n[[models]]\nspec = "{self.b["model"]}"\nname = "m"\n')
        out = self.tmp / "rep"
        out.mkdir()
        (out / "reproduce_config.json").write_text(json.dumps(load_config(cfg).to_dict(), default=str))
        argv = self.sweep("--layers", "0,1", "--multipliers=-1,0,1", "--template", "plain", out=out / "m")
        assert cli.main(argv) == 0
        if edit:
            edit(out)
        return str(out)

    def control_vector_gguf(self, tensors: dict, name="cv.gguf") -> str:
        import gguf

        p = self.tmp / name
        w = gguf.GGUFWriter(str(p), "controlvector")
        for k, v in tensors.items():
            w.add_tensor(k, v)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return str(p)

    def nonempty_orth_out(self) -> list:
        (self.tmp / "orth").mkdir()
        (self.tmp / "orth" / "keep.txt").write_text("mine")
        return self.ortho()
