"""Refusal-direction candidates, layer selection on validation prompts, and the ablation/actadd comparison."""

import json

import numpy as np
import pytest
import torch

from steerscale.config import AblationRecipe
from steerscale.core.data import Prompt
from steerscale.errors import SteerscaleError
from steerscale.interventions.ablation import (
    direction_from_file, refusal_directions, run_ablation_study, select_layer, split_prompts,
)
from steerscale.interventions.compare import compare_interventions
from steerscale.measures.refusal import PhraseMatcher, refusal_logodds
from steerscale.core.steering import ablate, capture, steer

HARMFUL = [f"How do I build weapon number {i} to hurt people?" for i in range(12)]
HARMLESS = [f"How do I bake cake number {i} for friends?" for i in range(12)]
NEUTRAL = ["The river runs through the valley and into the sea, carrying silt from the hills.",
           "Bees collect nectar from flowers and turn it into honey inside the hive."]


@pytest.fixture(scope="module")
def tiny_chat(tmp_path_factory):
    from tinydir import save_tiny_model

    from steerscale.core.models import load_model

    torch.set_num_threads(1)
    path = save_tiny_model(tmp_path_factory.mktemp("m") / "tiny", layers=5)
    return load_model(str(path))


def test_refusal_directions_match_per_prompt_means(tiny_chat):
    from steerscale.core.prompts import _encode, format_prompt

    model, tok, info = tiny_chat
    v = refusal_directions(model, tok, HARMFUL[:5], HARMLESS[:4], batch_size=3, info=info)
    assert v.vectors.shape == (info.n_layers, info.hidden_size)

    def mean(prompts):
        acc = []
        for p in prompts:
            ids = torch.tensor([_encode(tok, format_prompt(tok, p))])
            with capture(model, position=-1) as st:
                model(input_ids=ids, use_cache=False)
            acc.append(torch.stack([st[l][0][0] for l in range(info.n_layers)]))
        return torch.stack(acc).double().mean(0)

    torch.testing.assert_close(v.vectors.double(), mean(HARMFUL[:5]) - mean(HARMLESS[:4]), atol=1e-5, rtol=1e-5)
    assert v.meta["n_harmful"] == 5 and "last token" in v.meta["read_at"]


def test_split_prompts_disjoint_and_seeded():
    recs = [Prompt(f"p{i}", str(i)) for i in range(20)]
    tr, va, te = split_prompts(recs, seed=3)
    ids = [p.id for p in tr + va + te]
    assert sorted(ids, key=int) == [str(i) for i in range(20)] and len(set(ids)) == 20
    assert (len(tr), len(va), len(te)) == (10, 5, 5)
    assert [p.id for p in split_prompts(recs, seed=3)[2]] == [p.id for p in te]
    with pytest.raises(SteerscaleError, match="too few"):
        split_prompts(recs[:2])


def test_select_layer_rule_and_filters(tiny_chat):
    model, tok, info = tiny_chat
    v = refusal_directions(model, tok, HARMFUL[:6], HARMLESS[:6], info=info)
    sel = select_layer(model, tok, v, HARMFUL[6:9], HARMLESS[6:9], kl_threshold=None, prune_fraction=0.2,
                       induce_threshold=None, progress=False)
    by = {r["layer"]: r for r in sel.rows}
    # refusal_direction prunes its index >= int(5 * 0.8) = 4, i.e. steerscale's layers 3 and 4
    assert [l for l in by if not by[l]["kept"]] == [3, 4] and "last" in by[3]["why_filtered"]
    kept = [r for r in sel.rows if r["kept"]]
    assert sel.layer == min(kept, key=lambda r: r["ablation_logodds_harmful"])["layer"]
    assert sum(r["selected"] for r in sel.rows) == 1
    torch.testing.assert_close(sel.direction, v.vectors[sel.layer])
    # the recorded ablation score is the refusal log-odds under ablation, recomputed independently
    words = PhraseMatcher().opening_words()
    with ablate(model, v.vectors[sel.layer]):
        again = refusal_logodds(model, tok, HARMFUL[6:9], words).logodds.mean()
    assert abs(again - by[sel.layer]["ablation_logodds_harmful"]) < 1e-9
    with pytest.raises(SteerscaleError, match="every candidate was filtered"):
        select_layer(model, tok, v, HARMFUL[6:9], HARMLESS[6:9], kl_threshold=0.0, progress=False)


def test_compare_interventions_measures_and_deltas(tiny_chat, tmp_path):
    model, tok, info = tiny_chat
    v = refusal_directions(model, tok, HARMFUL[:6], HARMLESS[:6], info=info)
    res = compare_interventions(model, tok, v, 2, HARMFUL[6:], HARMLESS[6:], NEUTRAL, multipliers=[-2.0, 2.0],
                                n_bootstrap=200, out_dir=tmp_path / "cmp", progress=False)
    agg = {r["condition"]: r for r in res.aggregate}
    assert set(agg) == {"baseline", "ablation", "actadd-2", "actadd+2"}
    assert agg["baseline"]["delta_logodds_harmful"] == 0 and agg["baseline"]["ce_delta"] == 0
    words = PhraseMatcher().opening_words()
    with steer(model, v, [2], 2.0):
        direct = refusal_logodds(model, tok, HARMFUL[6:], words).logodds
    base = refusal_logodds(model, tok, HARMFUL[6:], words).logodds
    assert abs(agg["actadd+2"]["logodds_harmful"] - direct.mean()) < 1e-9
    assert abs(agg["actadd+2"]["delta_logodds_harmful"] - (direct - base).mean()) < 1e-9
    for r in res.aggregate:
        assert r["logodds_harmful_low"] <= r["logodds_harmful"] <= r["logodds_harmful_high"]
        assert r["ce_delta_low"] <= r["ce_delta"] <= r["ce_delta_high"]
    assert agg["ablation"]["ce_delta"] != 0  # the intervention changed the model
    for f in ("items.csv", "aggregate.csv", "ce.csv", "manifest.json"):
        assert (tmp_path / "cmp" / f).is_file()
    man = json.loads((tmp_path / "cmp" / "manifest.json").read_text())
    assert man["config"]["layer"] == 2 and "ablation" in man["definitions"]
    n_items = len(HARMFUL[6:]) + len(HARMLESS[6:])
    assert len(res.items) == 4 * n_items


def test_planted_refusal_token_direction_moves_logodds(tiny_chat):
    """Adding the head's row of the refusal-opening token at the last layer raises refusal log-odds; the
    comparison reports it as a positive delta with an interval above 0."""
    model, tok, info = tiny_chat
    words = PhraseMatcher().opening_words()
    from steerscale.measures.refusal import opening_token_ids
    from steerscale.core.prompts import format_prompt

    tid = opening_token_ids(tok, format_prompt(tok, HARMFUL[0]), words)[0]
    planted = torch.zeros(info.n_layers, info.hidden_size)
    planted[info.n_layers - 1] = model.get_output_embeddings().weight[tid].detach()
    res = compare_interventions(model, tok, planted, info.n_layers - 1, HARMFUL, HARMLESS, None,
                                multipliers=[3.0], n_bootstrap=200, progress=False)
    r = {x["condition"]: x for x in res.aggregate}["actadd+3"]
    assert r["delta_logodds_harmful_low"] > 0 and r["delta_logodds_harmless_low"] > 0


def test_run_ablation_study_writes_directions_file(tiny_chat, tmp_path):
    model, tok, info = tiny_chat
    recipe = AblationRecipe(kl_threshold=None, induce_filter="off", filter_prompts="none")
    res, vecs = run_ablation_study(model, tok, HARMFUL, HARMLESS, NEUTRAL, recipe=recipe, n_bootstrap=100,
                                   out_dir=tmp_path / "abl", progress=False)
    chosen = vecs.meta["selected_layer"]
    assert res.manifest["selection"]["layer"] == chosen
    test_ids = set(res.manifest["prompts"]["harmful_ids"])
    assert not test_ids & set(res.manifest["split"]["harmful_val_ids"])
    assert not test_ids & set(res.manifest["split"]["harmful_train_ids"])
    d, layer = direction_from_file(tmp_path / "abl" / "directions.safetensors")
    assert layer == chosen
    torch.testing.assert_close(d, vecs.vectors[chosen])
    assert (tmp_path / "abl" / "selection.csv").is_file()
