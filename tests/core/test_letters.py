"""Letter-balanced estimators (letters.py): a planted letter component cancels exactly in the default and is
carried as s_bar * l by CAA's raw mean, for 2 and 4 choices; swap; letter figures in the metadata, the
warning and the sweep's refusal; seeded, letter-stratified and fractional limits; old caches not misread."""

import json
import logging

import pytest
import torch

from steerscale.core.activations import ActivationStats, cache_key
from steerscale.cli import main
from steerscale.core.data import (
    check_limit, letter_counts, load_dataset, parse_item, sample_items, split_items, swap_item,
)
from steerscale.errors import SteerscaleError
from steerscale.core.letters import IMBALANCE_BOUND, LetterFigures, check_imbalance, decompose, letter_figures
from steerscale.core.models import model_info
from steerscale.core.vectors import SteeringVectors, train_vectors, vectors_for_run
from conftest import TinyTokenizer, make_model
from builders import blocks_add_nothing
from tinydir import save_tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")
LETTERS = "ABCD"


def letter_llama(letters=LETTERS, seed=0):
    """A Llama whose blocks add nothing: the residual at the answer token is that letter's embedding, so every
    item's diff is E[matching] - E[non-matching], a pure letter-identity component (no behaviour)."""
    torch.manual_seed(seed)
    model, tok = blocks_add_nothing(make_model("llama")), TinyTokenizer()
    with torch.no_grad():
        for x in letters:  # planted letter-identity components, large next to the rest
            model.model.embed_tokens.weight[tok(x).input_ids[0]] = 5 * torch.randn(model.config.hidden_size)
    E = model.model.embed_tokens.weight.detach()
    lam = {x: E[tok(x).input_ids[0]].clone() for x in letters}
    return model, tok, lam


def item(i, match, other, n_choices=2):
    opts = "\n".join(f"({c}) option {c.lower()}{i}" for c in LETTERS[:n_choices])
    return parse_item({"question": f"request {i}?\n\nChoices:\n{opts}", "answer_matching_behavior": f"({match})",
                       "answer_not_matching_behavior": f"({other})"}, idx=i)


def imbalanced(n_a, n_b):
    return [item(i, "A", "B") for i in range(n_a)] + [item(n_a + i, "B", "A") for i in range(n_b)]


def four_choice_items():
    """12 items over 4 letters, matching letters 6 A / 3 B / 2 C / 1 D, every letter also non-matching."""
    pairs = [("A", "B")] * 3 + [("A", "C")] * 2 + [("A", "D")] + [("B", "A")] * 2 + [("B", "C")] + \
            [("C", "D"), ("C", "A")] + [("D", "B")]
    return [item(i, m, n, 4) for i, (m, n) in enumerate(pairs)]


# ------------------------------------------------------------------ the estimators on a model (pure letter)


def test_two_choices_default_cancels_the_letter_none_carries_sbar_l():
    model, tok, lam = letter_llama("AB")
    ell = lam["A"] - lam["B"]
    its = imbalanced(7, 3)  # s_bar = +0.4
    none = train_vectors(model, tok, its, template="plain", progress=False, letter_balance="none")
    bal = train_vectors(model, tok, its, template="plain", progress=False)
    swap = train_vectors(model, tok, its, template="plain", progress=False, letter_balance="swap")
    for l in range(none.n_layers):
        torch.testing.assert_close(none[l], 0.4 * ell, atol=1e-5, rtol=1e-5)
    assert float(ell.norm()) > 1 and float(bal.vectors.abs().max()) < 1e-5
    assert float(swap.vectors.abs().max()) < 1e-5  # each item and its swapped twin: the letter cancels
    assert bal.meta["letter_balance"] == "balanced" and swap.meta["n_items"] == 10


def test_four_choices_default_cancels_a_planted_letter_identity():
    model, tok, lam = letter_llama()
    its = four_choice_items()
    none = train_vectors(model, tok, its, template="plain", progress=False, letter_balance="none")
    bal = train_vectors(model, tok, its, template="plain", progress=False)
    expected = sum(lam[it.matching] - lam[it.not_matching] for it in its) / len(its)
    assert float(expected.norm()) > 1
    torch.testing.assert_close(none[0], expected, atol=1e-5, rtol=1e-5)
    assert float(bal.vectors.abs().max()) < 1e-5


def test_a_letter_that_never_matches_is_refused_before_any_pass():
    model, tok, _ = letter_llama("AB")
    with pytest.raises(SteerscaleError, match=r"letter pairs \(A>B; matching letters A: 5\) cannot separate .*use --letter-balance swap"):
        train_vectors(model, tok, imbalanced(5, 0), template="plain", progress=False)
    v = train_vectors(model, tok, imbalanced(5, 0), template="plain", progress=False, letter_balance="swap")
    assert float(v.vectors.abs().max()) < 1e-5


# ------------------------------------------------------------------ the decomposition (synthetic activations)


def _cells(diffs, pairs):
    cells = {}
    for d, (m, n) in zip(diffs, pairs):
        k = f"{m}>{n}"
        s, c = cells.get(k, (torch.zeros_like(d), 0))
        cells[k] = (s + d, c + 1)
    return cells


@pytest.mark.parametrize("n_choices", [2, 4])
def test_planted_letter_and_behaviour_directions(n_choices):
    """diff_i = b + noise_i + lambda_m - lambda_n: adding the letter components changes the default by float
    rounding only, CAA's raw mean by exactly sum_c w_c (lambda_m - lambda_n) (= s_bar * l for two letters)."""
    g = torch.Generator().manual_seed(1)
    L, H = 3, 16
    b = torch.randn(L, H, generator=g, dtype=torch.float64)
    lam = {x: 40 * torch.randn(L, H, generator=g, dtype=torch.float64) for x in LETTERS[:n_choices]}
    if n_choices == 2:
        pairs = [("A", "B")] * 29 + [("B", "A")] * 11
    else:
        pairs = [(it.matching, it.not_matching) for it in four_choice_items()] * 3
    noise = [0.3 * torch.randn(L, H, generator=g, dtype=torch.float64) for _ in pairs]
    without = decompose(_cells([b + e for e in noise], pairs))
    planted = decompose(_cells([b + e + lam[m] - lam[n] for e, (m, n) in zip(noise, pairs)], pairs))
    torch.testing.assert_close(planted.balanced, without.balanced, atol=1e-9, rtol=0)
    term = sum(lam[m] - lam[n] for m, n in pairs) / len(pairs)
    torch.testing.assert_close(planted.raw - without.raw, term, atol=1e-9, rtol=0)
    torch.testing.assert_close(planted.imbalance - without.imbalance, term, atol=1e-9, rtol=0)
    assert float(term.norm()) > 5 * float(b.norm())  # a large letter term, gone from the default
    assert torch.nn.functional.cosine_similarity(without.balanced.flatten(), b.flatten(), dim=0) > 0.99
    if n_choices == 2:
        sbar = (29 - 11) / 40
        torch.testing.assert_close(planted.raw, sbar * planted.letter + planted.balanced, atol=1e-9, rtol=0)
        torch.testing.assert_close(planted.letter - without.letter, lam["A"] - lam["B"], atol=1e-9, rtol=0)


# ------------------------------------------------------------------ metadata, warning, refusal


def test_metadata_carries_the_letter_figures_and_the_warning_fires(caplog):
    model, tok, lam = letter_llama("AB")
    its = imbalanced(7, 3)
    with caplog.at_level(logging.WARNING, logger="steerscale.letters"):
        none = train_vectors(model, tok, its, template="plain", progress=False, letter_balance="none")
    assert any("letter-imbalance term is over 10%" in r.getMessage() for r in caplog.records)
    fig = LetterFigures.from_meta(none.meta)
    assert fig.estimator == "none" and fig.counts == {"A": 7, "B": 3} and fig.imbalance == pytest.approx(0.4)
    assert fig.letter_norm[0] == pytest.approx(float((lam["A"] - lam["B"]).norm()), rel=1e-4)
    assert fig.cos_letter[0] == pytest.approx(1.0, abs=1e-4) and fig.imbalance_share[0] == pytest.approx(1.0, abs=1e-4)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="steerscale.letters"):
        bal = train_vectors(model, tok, its, template="plain", progress=False)
    assert not caplog.records
    fb = LetterFigures.from_meta(bal.meta)
    assert fb.imbalance_share == [0.0] * bal.n_layers and fb.behaviour_norm[0] < 1e-5
    assert "estimator balanced, matching 7 A/3 B (s_bar +0.400)" in fb.summary()
    with pytest.raises(SteerscaleError, match=r"letter-imbalance term is 100% of the vector at layer 0"):
        check_imbalance(none.meta, [0])
    check_imbalance(none.meta, [0], allow=True)
    check_imbalance(bal.meta, [0])


def test_vectors_for_run_does_not_reuse_another_estimator(tmp_path):
    model, tok, _ = letter_llama("AB")
    its, p = imbalanced(3, 2), tmp_path / "vectors.safetensors"
    vectors_for_run(model, tok, its, p, template="plain", progress=False, letter_balance="none")
    with pytest.raises(SteerscaleError, match="letter_balance: 'none' vs 'balanced'"):
        vectors_for_run(model, tok, its, p, template="plain", progress=False)
    v = vectors_for_run(model, tok, its, p, template="plain", progress=False, on_mismatch="retrain")
    assert SteeringVectors.load(p).meta["letter_balance"] == v.meta["letter_balance"] == "balanced"


def _figures_meta(share):
    fig = LetterFigures("none", {"A": 3, "B": 1}, 4, 0.5, [1.0, 1.0], [0.1, 0.1], [0.5, 0.5], [0.9, 0.9],
                        [share, share])
    return {"steerscale": json.dumps({"model": "model", "letter": fig.to_meta(), "letter_balance": "none"})}


def test_sweep_refuses_a_confounded_none_vector_unless_allowed(tmp_path, capsys):
    from safetensors.torch import save_file

    model_dir = save_tiny_model(tmp_path / "model", layers=2, hidden=32)
    data = tmp_path / "d.json"
    data.write_text(json.dumps([it.to_caa() for it in imbalanced(2, 2)]))
    vec = tmp_path / "v.safetensors"
    save_file({"vectors": torch.randn(2, 32)}, str(vec), metadata=_figures_meta(2 * IMBALANCE_BOUND))
    args = ["sweep", "--model", str(model_dir), "--data", str(data), "--layers", "0", "--multipliers=0,1",
            "--vectors", str(vec), "--allow-foreign-vectors"]
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "letter-imbalance term is 20% of the vector at layer 0" in err[0]
    assert "--allow-letter-imbalance" in err[0]
    assert main([*args, "--out", str(tmp_path / "b"), "--allow-letter-imbalance"]) == 0
    assert (tmp_path / "b" / "manifest.json").is_file()


# ------------------------------------------------------------------ limits and splits


def test_stratified_limits_are_balanced_seeded_and_in_order():
    its = imbalanced(30, 10)  # the first 16 are all A
    s = sample_items(its, 16, seed=0)
    assert letter_counts(s) == {"A": 8, "B": 8}
    assert [it.id for it in s] == sorted((it.id for it in s), key=int)  # file order kept
    assert s == sample_items(its, 16, seed=0) and s != sample_items(its, 16, seed=1)
    assert letter_counts(sample_items(its, 25)) == {"A": 15, "B": 10}  # B has only 10: A takes the rest
    assert letter_counts(sample_items(its, 0.5)) == {"A": 10, "B": 10}  # a fraction: round(0.5 * 40) items
    assert sample_items(its, 40) == its and sample_items(its, 100) == its and sample_items(its, None) == its
    train = load_dataset("refusal-train")
    assert letter_counts(train[:16]) == {"A": 10, "B": 6}
    assert letter_counts(load_dataset("refusal-train", limit=16)) == {"A": 8, "B": 8}
    assert len(load_dataset("refusal-train", limit=0.25)) == 85


def test_limit_values():
    assert check_limit(3) == 3 and check_limit(0.5) == 0.5 and check_limit("0.25") == 0.25 and check_limit("7") == 7
    assert check_limit(2.0) == 2
    for bad in (0, -1, 1.5, 0.0, True, "x", float("nan")):
        with pytest.raises(SteerscaleError, match="expected a positive number of items or a fraction"):
            check_limit(bad)


def test_cli_limit_flag_takes_a_fraction(tmp_path, capsys):
    from steerscale.cli.options import _limit_type

    assert _limit_type("0.25") == 0.25 and _limit_type("16") == 16
    assert main(["train", "--limit", "1.5", "--out", str(tmp_path / "v.safetensors")]) == 2
    assert "--limit 1.5: expected a positive number of items or a fraction" in capsys.readouterr().err


def test_stratified_split_keeps_letter_shares():
    its = imbalanced(20, 10)
    val, test = split_items(its, 0.5, seed=3, strata=[it.matching for it in its])
    assert letter_counts(val) == {"A": 10, "B": 5} and letter_counts(test) == {"A": 10, "B": 5}
    assert sorted(val + test, key=lambda it: int(it.id)) == its


def test_swap_item_exchanges_the_two_options():
    it = item(3, "B", "A", 4)
    sw = swap_item(it)
    assert (sw.matching, sw.not_matching, sw.id) == ("A", "B", "3~swap")
    assert "(A) option b3\n(B) option a3\n(C) option c3" in sw.question
    assert swap_item(swap_item(it)).question == it.question


# ------------------------------------------------------------------ activation cache


def test_a_cache_without_letter_sums_is_not_misread(tmp_path):
    model, tok, _ = letter_llama("AB")
    its, info = imbalanced(3, 2), model_info(model)
    v1 = train_vectors(model, tok, its, template="plain", progress=False, cache_dir=tmp_path, info=info)
    (f,) = tmp_path.glob("activations-*.safetensors")
    new = ActivationStats.load(f)
    assert new.has_cells and sum(n for _, n in new.cells.values()) == 5
    # an old-format file (mean difference only, no per-letter sums) at the same name: not used
    old = ActivationStats(new.mean_diff * 0 + 123.0, new.mean_norm, new.n_items, dict(new.meta))
    old.save(f)
    assert not ActivationStats.load(f).has_cells
    v2 = train_vectors(model, tok, its, template="plain", progress=False, cache_dir=tmp_path, info=info)
    assert torch.equal(v1.vectors, v2.vectors) and ActivationStats.load(f).has_cells
    # and the key itself changed with the format: a file named by the old key is never looked up
    from steerscale.core import activations

    k_new = cache_key("m", 1, "float32", its, "plain", None, spec="s", fingerprint="f")
    v = activations.CACHE_VERSION
    try:
        activations.CACHE_VERSION = 1
        assert cache_key("m", 1, "float32", its, "plain", None, spec="s", fingerprint="f") != k_new
    finally:
        activations.CACHE_VERSION = v


def test_train_prints_the_letter_summary_and_records_sampling(tmp_path, capsys):
    model_dir = save_tiny_model(tmp_path / "model", layers=2, hidden=32)
    data = tmp_path / "d.json"
    data.write_text(json.dumps([it.to_caa() for it in imbalanced(6, 3)]))
    out = tmp_path / "v.safetensors"
    assert main(["train", "--model", str(model_dir), "--data", str(data), "--limit", "0.5", "--template", "plain",
                 "--letter-balance", "swap", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("letters: estimator swap, matching 3 A/2 B (s_bar +0.200)")
    meta = SteeringVectors.load(out).meta
    assert meta["letter_balance"] == "swap" and meta["letter"]["counts"] == {"A": 3, "B": 2}
    assert meta["sampling"]["limit"] == 0.5 and meta["sampling"]["seed"] == 0
