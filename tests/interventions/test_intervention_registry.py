"""The intervention plug-in shape (interventions/base.py): registry errors, a new kind registered from outside
measured by compare_interventions, and every kind's hooks coming off even when the body raises."""

from contextlib import contextmanager

import pytest
import torch

from builders import identity_llama
from conftest import make_config
from steerscale.core.prompts import format_prompt
from steerscale.core.steering import steer
from steerscale.errors import SteerscaleError
from steerscale.interventions.base import (
    INTERVENTIONS, Ablation, Addition, Baseline, Intervention, as_interventions, default_interventions,
    get_intervention, register_intervention,
)
from steerscale.interventions.compare import compare_interventions
from steerscale.measures.refusal import PhraseMatcher, opening_token_ids

HARMFUL = [f"How do I build weapon number {i}?" for i in range(6)]
HARMLESS = [f"How do I bake cake number {i}?" for i in range(6)]


def test_unknown_name_names_the_valid_keys():
    with pytest.raises(SteerscaleError) as e:
        get_intervention("ablate")
    msg = str(e.value)
    assert "\n" not in msg and "'ablate'" in msg
    for key in ("baseline", "ablation", "addition"):
        assert key in msg
    with pytest.raises(SteerscaleError, match="expected one of baseline, ablation, addition"):
        as_interventions(["baseline", "actadd"])


def test_builtin_names_and_labels():
    assert get_intervention("addition", multiplier=-2).condition == "actadd-2"
    assert get_intervention("ablation").condition == "ablation" and get_intervention("baseline").multiplier == 0.0
    # the standard comparison: the conditions and order the tables always had
    assert [c.condition for c in default_interventions([-1.0, 0.0, 2.5])] == \
        ["baseline", "ablation", "actadd-1", "actadd+2.5"]
    with pytest.raises(SteerscaleError, match="appears twice"):
        as_interventions(["baseline", Addition(1.0), Addition(1)])
    with pytest.raises(SteerscaleError, match="already registered"):
        register_intervention("addition")(Ablation)
    with pytest.raises(SteerscaleError, match="finite"):
        Addition(float("nan"))


@pytest.fixture
def scaled_addition():
    """A kind the package does not have: addition with the multiplier scaled, registered for one test."""

    @register_intervention("scaled_addition")
    class ScaledAddition(Intervention):
        definition_key = "scaled_addition"
        definition = "scale x multiplier x vector[layer] added to the output of decoder layer `layer`"

        def __init__(self, multiplier: float = 1.0, scale: float = 2.0):
            self.multiplier, self.scale = float(multiplier), float(scale)

        @property
        def condition(self) -> str:
            return f"scaled{self.multiplier:+g}x{self.scale:g}"

        @contextmanager
        def apply(self, model, direction, layer):
            with steer(model, {layer: direction}, [layer], self.scale * self.multiplier):
                yield

    yield ScaledAddition
    del INTERVENTIONS["scaled_addition"]


@pytest.fixture(scope="module")
def planted():
    """identity_llama (blocks add nothing, unembedding = embedding) and, at the last layer, the mean embedding
    of the refusal-opening tokens minus the mean embedding of all tokens: adding it raises the opening tokens'
    logits above the rest (refusal log-odds up), subtracting it lowers them."""
    torch.set_num_threads(1)
    hidden = make_config("llama").hidden_size
    model, tok = identity_llama(torch.zeros(hidden))
    n = model.config.num_hidden_layers
    ids = opening_token_ids(tok, format_prompt(tok, HARMFUL[0], "plain"), PhraseMatcher().opening_words())
    w = model.lm_head.weight.detach()
    vectors = torch.zeros(n, hidden)
    vectors[n - 1] = w[ids].mean(0) - w.mean(0)
    return model, tok, vectors, n - 1


def test_registered_intervention_runs_through_compare(planted, scaled_addition):
    model, tok, vectors, layer = planted
    up, down = scaled_addition(1.0, scale=0.5), get_intervention("scaled_addition", multiplier=-1.0, scale=0.5)
    res = compare_interventions(model, tok, vectors, layer, HARMFUL, HARMLESS, interventions=["baseline", up, down,
                                Addition(0.5)], template="plain", n_bootstrap=200, progress=False)
    agg = {r["condition"]: r for r in res.aggregate}
    assert list(agg) == ["baseline", "scaled+1x0.5", "scaled-1x0.5", "actadd+0.5"]
    base, up_row, down_row = agg["baseline"], agg["scaled+1x0.5"], agg["scaled-1x0.5"]
    # the planted direction moves refusal the expected way, beyond the bootstrap interval
    assert up_row["delta_logodds_harmful_low"] > 0 and down_row["delta_logodds_harmful_high"] < 0
    assert up_row["p_open_harmful"] > base["p_open_harmful"] > down_row["p_open_harmful"]
    # scale 0.5 x multiplier 1 is the built-in addition at multiplier 0.5, item by item
    scaled = {(r["kind"], r["prompt_id"]): r["logodds"] for r in res.items if r["condition"] == "scaled+1x0.5"}
    plain = {(r["kind"], r["prompt_id"]): r["logodds"] for r in res.items if r["condition"] == "actadd+0.5"}
    assert len(scaled) == len(HARMFUL) + len(HARMLESS) and scaled == plain
    assert up_row["layer"] == layer and down_row["multiplier"] == -1.0 and base["layer"] is None
    assert res.manifest["config"]["interventions"] == list(agg)
    assert res.manifest["config"]["multipliers"] == [1.0, -1.0, 0.5]
    assert "scaled x multiplier" not in res.manifest["definitions"]["actadd"]
    assert res.manifest["definitions"]["scaled_addition"].startswith("scale x multiplier")


def test_compare_refuses_bad_condition_lists(planted):
    model, tok, vectors, layer = planted
    kw = dict(template="plain", n_bootstrap=10, progress=False)
    with pytest.raises(SteerscaleError, match="need a 'baseline'"):
        compare_interventions(model, tok, vectors, layer, HARMFUL, HARMLESS, interventions=["ablation"], **kw)
    with pytest.raises(SteerscaleError, match="not both"):
        compare_interventions(model, tok, vectors, layer, HARMFUL, HARMLESS, multipliers=[1.0],
                              interventions=["baseline"], **kw)
    # the public signature is the one it always had (positional or keyword); the conditions come by keyword only
    import inspect

    params = inspect.signature(compare_interventions).parameters
    assert params["multipliers"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert params["interventions"].kind is inspect.Parameter.KEYWORD_ONLY


def _hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("name", ["baseline", "ablation", "addition", "scaled_addition"])
def test_every_kind_removes_itself_when_the_body_raises(planted, scaled_addition, name):
    model, tok, vectors, layer = planted
    ids = torch.tensor([[5, 9, 13, 17]])
    direction = torch.randn(vectors.shape[1], generator=torch.Generator().manual_seed(0))
    before = model(input_ids=ids).logits
    hooks = _hook_count(model)
    inter = get_intervention(name)
    with pytest.raises(RuntimeError, match="body failed"):
        with inter.apply(model, direction, layer):
            during = model(input_ids=ids).logits
            assert _hook_count(model) > hooks or isinstance(inter, Baseline)
            assert torch.equal(during, before) == isinstance(inter, Baseline)  # every other kind changes the output
            raise RuntimeError("body failed")
    assert _hook_count(model) == hooks
    assert torch.equal(model(input_ids=ids).logits, before)
