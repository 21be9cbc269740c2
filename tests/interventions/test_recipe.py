"""The ablation recipe is refusal_direction's (Arditi et al. 2024): its pruning formula, every post-instruction
position as a candidate, the induce-refusal / KL filters, prompt filtering by baseline refusal, and a record
of every difference."""

import copy

import pytest
import torch

from steerscale.interventions.recipe import FIXED_DIFFERENCES, differences, post_instruction_count, pruned
from steerscale.config import AblationRecipe
from steerscale.core.prompts import _encode, format_prompt
from steerscale.errors import SteerscaleError
from steerscale.interventions.ablation import candidate_directions, run_ablation_study, select_layer
from steerscale.measures.refusal import PhraseMatcher, opening_token_ids, refusal_logodds
from steerscale.core.steering import capture

HARMFUL = [f"How do I build weapon number {i} to hurt people?" for i in range(12)]
HARMLESS = [f"How do I bake cake number {i} for friends?" for i in range(12)]


def their_filter_fn_prunes(layer, n_layer, prune_layer_percentage=0.20):
    """refusal_direction pipeline/submodules/select_direction.py filter_fn, the pruning line verbatim."""
    return prune_layer_percentage is not None and layer >= int(n_layer * (1.0 - prune_layer_percentage))


@pytest.mark.parametrize("n_layers,expected", [(5, [3, 4]), (10, [7, 8, 9]), (30, list(range(23, 30)))])
def test_pruning_matches_refusal_direction_formula(n_layers, expected):
    # their layer index is the input of block i (resid_pre), i.e. steerscale's output of layer i - 1
    ours = [l for l in range(n_layers) if pruned(l, n_layers, 0.2)]
    theirs = [i - 1 for i in range(1, n_layers) if their_filter_fn_prunes(i, n_layers)] + [n_layers - 1]
    assert ours == theirs == expected
    # the old rule (formula on steerscale's index) keeps the first layer they prune
    old = [l for l in range(n_layers) if pruned(l, n_layers, 0.2, "output-index")]
    assert old == expected[1:]
    assert not any(pruned(l, n_layers, None) for l in range(n_layers))


@pytest.fixture(scope="module")
def tiny_chat(tmp_path_factory):
    from tinydir import save_tiny_model

    from steerscale.core.models import load_model

    torch.set_num_threads(1)
    path = save_tiny_model(tmp_path_factory.mktemp("m") / "tiny", layers=5)
    return load_model(str(path))


def test_post_instruction_positions_and_their_means(tiny_chat):
    model, tok, info = tiny_chat
    # the template writes "\n<|assistant|>\n" after the instruction: 15 characters, 15 tokens
    assert post_instruction_count(tok, HARMFUL[0]) == 15
    c = candidate_directions(model, tok, HARMFUL[:4], HARMLESS[:3], batch_size=3, info=info, n_positions=3)
    assert c.shape == (3, info.n_layers, info.hidden_size)

    def mean(prompts, pos):
        acc = []
        for p in prompts:
            with capture(model, position=pos) as st:
                model(input_ids=torch.tensor([_encode(tok, format_prompt(tok, p))]), use_cache=False)
            acc.append(torch.stack([st[l][0][0] for l in range(info.n_layers)]))
        return torch.stack(acc).double().mean(0)

    for i, pos in enumerate((-3, -2, -1)):
        torch.testing.assert_close(c[i].double(), mean(HARMFUL[:4], pos) - mean(HARMLESS[:3], pos),
                                   atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def planted(tiny_chat):
    """The tiny model made to refuse along a known unit direction u: every embedding carries 30u and the head
    rows of the refusal-opening tokens are 6u, so the refusal log-odds rise with the residual's u component
    and ablating u (and only u) removes it."""
    model, tok, info = tiny_chat
    model = copy.deepcopy(model)
    g = torch.Generator().manual_seed(11)
    u = torch.randn(info.hidden_size, generator=g)
    u = u / u.norm()
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert emb.data_ptr() != head.data_ptr()
    ids = opening_token_ids(tok, format_prompt(tok, HARMFUL[0]), PhraseMatcher().opening_words())
    with torch.no_grad():
        emb += 30.0 * u
        head[ids] = 6.0 * u
    return model, tok, info, u


def _candidates(info, u, n_pos=3, seed=4):
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(n_pos, info.n_layers, info.hidden_size, generator=g)
    c = c - (c @ u)[..., None] * u  # every other candidate is orthogonal to u
    return c


def test_planted_direction_at_known_position_and_layer_is_selected(planted):
    model, tok, info, u = planted
    c = _candidates(info, u)
    c[1, 2] = 80.0 * u  # planted: position -2, layer 2
    c[0, 1] = -80.0 * u  # decoy, earlier in refusal_direction's order: same ablation, its addition suppresses refusal
    kw = dict(kl_threshold=None, prune_fraction=0.2, progress=False)
    sel = select_layer(model, tok, c, HARMFUL[:4], HARMLESS[:4], induce_threshold=0.0, **kw)
    assert (sel.position, sel.layer) == (-2, 2)
    torch.testing.assert_close(sel.direction, c[1, 2])
    rows = {(r["position"], r["layer"]): r for r in sel.rows}
    assert len(rows) == 3 * info.n_layers
    decoy = rows[(-3, 1)]
    assert decoy["kept"] == 0 and "induce-refusal" in decoy["why_filtered"]
    assert abs(decoy["ablation_logodds_harmful"] - rows[(-2, 2)]["ablation_logodds_harmful"]) < 1e-9
    others = [r for k, r in rows.items() if k not in ((-3, 1), (-2, 2)) and r["kept"]]
    assert others and min(r["ablation_logodds_harmful"] for r in others) > rows[(-2, 2)]["ablation_logodds_harmful"] + 1
    # pruned: layers 3 and 4 at every position, whatever they hold
    assert all(not rows[(p, l)]["kept"] for p in (-3, -2, -1) for l in (3, 4))
    # without the induce-refusal filter the decoy (first of the tie) wins: the filter is what drops it
    off = select_layer(model, tok, c, HARMFUL[:4], HARMLESS[:4], induce_threshold=None, **kw)
    assert (off.position, off.layer) == (-3, 1)
    # the KL filter drops u: ablating it moves harmless next-token distributions far more than 0.1
    kl = select_layer(model, tok, c, HARMFUL[:4], HARMLESS[:4], kl_threshold=0.1, induce_threshold=None,
                      prune_fraction=0.2, progress=False)
    krow = {(r["position"], r["layer"]): r for r in kl.rows}
    assert krow[(-2, 2)]["kl_harmless"] > 0.1 and "KL" in krow[(-2, 2)]["why_filtered"]
    assert (kl.position, kl.layer) not in ((-2, 2), (-3, 1))


def _refusing(tiny_chat, gamma, alpha=6.0):
    model, tok, info = tiny_chat
    model = copy.deepcopy(model)
    u = torch.randn(info.hidden_size, generator=torch.Generator().manual_seed(11))
    u = u / u.norm()
    ids = opening_token_ids(tok, format_prompt(tok, HARMFUL[0]), PhraseMatcher().opening_words())
    with torch.no_grad():
        model.get_input_embeddings().weight.add_(gamma * u)
        model.get_output_embeddings().weight[ids] = alpha * u
    return model


def test_prompt_filter_drops_by_baseline_refusal(planted, tiny_chat):
    # the planted model refuses everything: no harmless prompt survives the filter
    model, tok, info, u = planted
    with pytest.raises(SteerscaleError, match="nothing left"):
        run_ablation_study(model, tok, HARMFUL, HARMLESS, None, recipe=AblationRecipe(), progress=False)
    # a model on the edge of refusing (u's weight bisected so the median harmful prompt's log-odds is ~0): the
    # filter drops exactly the harmful prompts at or below 0 and the harmless ones at or above 0
    _, tok, info = tiny_chat
    words = PhraseMatcher().opening_words()
    prompts = HARMFUL  # these refuse more than the harmless ones: on the edge, half of them are dropped
    lo_g, hi_g = 5.0, 40.0
    for _ in range(25):
        mid = (lo_g + hi_g) / 2
        med = float(torch.tensor(refusal_logodds(_refusing(tiny_chat, mid), tok, prompts, words).logodds).median())
        lo_g, hi_g = (mid, hi_g) if med < 0 else (lo_g, mid)
    model = _refusing(tiny_chat, (lo_g + hi_g) / 2)
    recipe = AblationRecipe(kl_threshold=None, induce_filter="off")
    res, vecs = run_ablation_study(model, tok, HARMFUL, HARMLESS, None, recipe=recipe, n_bootstrap=50, progress=False)
    split, dropped = res.manifest["split"], res.manifest["split"]["filtered_by_baseline_refusal"]
    for kind, texts, sign in (("harmful", HARMFUL, 1), ("harmless", HARMLESS, -1)):
        for part in ("train", "val"):
            kept, gone = split[f"{kind}_{part}_ids"], dropped[f"{kind}_{part}_dropped"]
            lo = refusal_logodds(model, tok, [texts[int(i)] for i in kept + gone], words).logodds
            assert all(sign * x > 0 for x in lo[: len(kept)]) and all(sign * x <= 0 for x in lo[len(kept):])
            assert len(kept) + len(gone) == (6 if part == "train" else 3)
    assert dropped["harmful_train_dropped"] and dropped["harmful_val_dropped"], "the test could not fail"
    assert res.manifest["recipe"]["n_candidate_positions"] == 15
    assert vecs.meta["selected_position"] == res.manifest["recipe"]["selected_position"]
    assert res.manifest["recipe"]["is_reference_recipe"] is False


def test_every_difference_is_named():
    assert differences(AblationRecipe()) == FIXED_DIFFERENCES
    d = differences(AblationRecipe(candidate_positions="last", filter_prompts="none", induce_filter="off",
                                   prune_rule="output-index", kl_threshold=0.5))
    for word in ("last prompt token", "not filtered", "induce-refusal filter is off", "one layer", "KL filter"):
        assert any(word in x for x in d), word
    assert len(d) == 5 + len(FIXED_DIFFERENCES)
