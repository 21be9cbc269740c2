"""The open-ended sweep: refusal (harmful prompts), over-refusal (harmless) and capability cost at every
point x multiplier, multi-layer and scaled injection.

Injection: a *point* is a window of layers ``layer_start .. layer_end`` (width 1 = one layer); each layer
in the window adds ``multiplier * vector`` to its output (per-layer vectors, or the start layer's vector at
every layer; steering.window_vectors). Multiplier 0 is the unsteered model, computed once and repeated at
every point. At each point `run_openended` takes the measures of measures.refusal (phrase refusal of
greedy / sampled generations, first-token refusal log-odds), measures.capability (neutral-text CE,
degeneration) and, when given, a judge (measures.judges); every measured point is stored at once
(measures.openended_store) so a re-run resumes, and the tables are built from the stored values
(measures.openended_tables), all intervals from the one bootstrap (steerscale.stats).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from ..core.data import Prompt
from ..errors import SteerscaleError
from ..core.evaluate import generate
from ..core.checks import model_context
from ..core.models import ModelInfo, model_info
from ..io.results import manifest as make_manifest
from ..core.steering import steer, window_vectors
from ..core.vectors import as_vectors
from ..io.store import ResultsStore
from ..sweep.run import _MemoryStore
from . import store as ostore
from ..measures.capability import degeneration, neutral_cross_entropy
from ..config import OpenEndedConfig
from .tables import OpenEndedResult, aggregate_point, max_multiplier_under_bound
from ..measures.refusal import PhraseMatcher, refusal_logodds

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..core.types import Tokenizer
    from ..core.vectors import SteeringVectors


def run_openended(
    model: PreTrainedModel,
    tokenizer: Tokenizer,
    vectors: SteeringVectors | torch.Tensor,
    harmful: list[Prompt],
    harmless: list[Prompt],
    neutral: list[str] | None = None,
    config: OpenEndedConfig | None = None,
    info: ModelInfo | None = None,
    phrases: PhraseMatcher | None = None,
    judge=None,
    out_dir=None,
    progress: bool = True,
) -> OpenEndedResult:
    """Open-ended refusal (harmful), over-refusal (harmless) and capability cost at every point x multiplier.

    `vectors`: SteeringVectors (or [n_layers, hidden] tensor) for this model. `harmful`/`harmless`: Prompt
    records (data.load_prompt_records). `neutral`: paragraphs for CE (data.load_neutral_text). `judge`:
    an HTTPJudge / HFJudge / callable(prompts, responses) -> list of 0/1/NaN, or None.
    """
    info = info or model_info(model)
    config = (config or OpenEndedConfig()).validate()
    points = config.points(info.n_layers)
    if isinstance(vectors, torch.Tensor) and tuple(vectors.shape) != (info.n_layers, info.hidden_size):
        raise SteerscaleError(f"vectors of shape {tuple(vectors.shape)}: this model needs "
                              f"[{info.n_layers}, {info.hidden_size}]")
    vectors = as_vectors(vectors)
    vectors.check_model(model)
    if not harmful and not harmless:
        raise SteerscaleError("no prompts to evaluate")
    phrases = phrases or PhraseMatcher()
    words = phrases.opening_words()
    if not words:
        raise SteerscaleError("refusal phrases: none starts with a capital letter, so no opening tokens")
    t0 = time.time()
    nl = config.n_logodds
    lo_prompts = [(p, "harmful") for p in harmful[:nl]] + [(p, "harmless") for p in harmless[:nl]]
    ng = config.n_generate
    gen_prompts = [(p, "harmful") for p in harmful[:ng]] + [(p, "harmless") for p in harmless[:ng]] if ng else []
    neutral = (neutral or [])[: config.n_neutral] if config.n_neutral != 0 else []
    modes = ["greedy"] + (["sampled"] if config.sampled else [])
    kw = dict(template=config.template, system=config.system, batch_size=config.batch_size)
    timings = {"logodds": 0.0, "generate": 0.0, "ce": 0.0, "judge": 0.0}

    # neutral paragraphs are cut to ce_max_tokens, and never past the model's context
    ce_tokens = min(config.ce_max_tokens, model_context(model) or config.ce_max_tokens)

    def measure(steering):
        t = time.time()
        lo = refusal_logodds(model, tokenizer, [p.text for p, _ in lo_prompts], words, steering=steering, **kw)
        timings["logodds"] += time.time() - t
        t = time.time()
        gens = {}
        for mode in modes if gen_prompts else []:
            gens[mode] = generate(model, tokenizer, [p.text for p, _ in gen_prompts], max_new_tokens=config.max_new_tokens,
                                  do_sample=mode == "sampled", temperature=config.temperature, seed=config.seed,
                                  steering=steering, **kw)
        timings["generate"] += time.time() - t
        t = time.time()
        ce = neutral_cross_entropy(model, tokenizer, neutral, config.batch_size, ce_tokens,
                                   steering=steering) if neutral else None
        timings["ce"] += time.time() - t
        return lo, gens, ce

    def judged(gens):
        if judge is None or not gens:
            return {}
        t = time.time()
        out = {mode: judge([p.text for p, _ in gen_prompts], texts) for mode, texts in gens.items()}
        timings["judge"] += time.time() - t
        return out

    # Every measured point is stored at once (and its judge verdicts right after): see openended_store.
    store = _MemoryStore() if out_dir is None else ResultsStore(
        out_dir, ostore.identity(config, info, lo_prompts, gen_prompts, neutral, phrases, vectors))
    shape = dict(n_lo=len(lo_prompts), n_gen=len(gen_prompts), modes=modes if gen_prompts else [], n_ce=len(neutral))

    def point(pt, m):
        def compute():
            if pt is None:
                return measure(None)
            s, e = pt
            vecs = window_vectors(vectors, s, e - s + 1, config.window_mode, n_layers=info.n_layers)
            with steer(model, vecs, list(vecs), m, positions=config.positions) as st:
                return measure(st)

        lo, gens, ce = ostore.measured(store, info.name, pt, m, compute, **shape)
        return lo, gens, ce, ostore.verdicts(store, info.name, pt, m, judge, gens, judged, len(gen_prompts))

    base_lo, base_gens, base_ce, base_judge = point(None, 0.0)
    results = {}
    steered_ms = [m for m in config.multipliers if m != 0.0]
    todo = [(pt, m) for pt in points for m in steered_ms]
    for (s, e), m in tqdm(todo, desc=f"open-ended {info.name}", disable=not progress):
        results[(s, e, m)] = point((s, e), m)

    lo_rows, gen_rows, ce_rows, agg = [], [], [], []
    for (s, e) in points:
        common = {"model": info.name, "n_layers": info.n_layers, "layer_start": s, "layer_end": e, "width": e - s + 1,
                  "depth": s / info.n_layers}
        for m in config.multipliers:
            lo, gens, ce, jd = (base_lo, base_gens, base_ce, base_judge) if m == 0.0 else results[(s, e, m)]
            row0 = dict(common, multiplier=m)
            for i, (p, kind) in enumerate(lo_prompts):
                lo_rows.append(dict(row0, prompt_id=p.id, kind=kind, category=p.category,
                                    logodds=float(lo.logodds[i]), p_open=float(lo.p_open[i])))
            for mode, texts in gens.items():
                for i, (p, kind) in enumerate(gen_prompts):
                    hit = phrases.match(texts[i])
                    gen_rows.append(dict(
                        row0, **degeneration(texts[i]), mode=mode, prompt_id=p.id, kind=kind, category=p.category,
                        prompt=p.text, unsteered_output=base_gens[mode][i], output=texts[i],
                        phrase_refusal=int(hit is not None), unsteered_phrase_refusal=phrases(base_gens[mode][i]),
                        matched_phrase=hit or "",
                        judge_refusal=jd[mode][i] if jd else None,
                        unsteered_judge_refusal=base_judge[mode][i] if base_judge else None))
            if ce is not None:
                for i in range(len(ce.nll_sum)):
                    ce_rows.append(dict(row0, text_id=i, n_tokens=int(ce.n_tokens[i]), nll_sum=float(ce.nll_sum[i]),
                                        ce=float(ce.nll_sum[i] / ce.n_tokens[i])))
            agg.append(aggregate_point(info, row0, lo, base_lo, lo_prompts, gens, jd, gen_prompts, ce, base_ce,
                                        phrases, config))
    maxm = max_multiplier_under_bound(agg, config.ce_bound) if config.ce_bound is not None else []
    elapsed = time.time() - t0
    manifest = make_manifest(
        "openended", config, info, t0,
        points=[list(p) for p in points],
        vectors=vectors.meta,
        prompts={"n_harmful_logodds": sum(k == "harmful" for _, k in lo_prompts),
                    "n_harmless_logodds": sum(k == "harmless" for _, k in lo_prompts),
                    "n_generate_per_kind": ng, "n_neutral": len(neutral)},
        refusal_phrases=phrases.phrases,
        refusal_opening_words=words,
        refusal_opening_tokens_first_prompt=base_lo.opening_tokens,
        judge=None if judge is None else {"type": getattr(judge, "name", type(judge).__name__),
                                              "url": getattr(judge, "url", None), "model": getattr(judge, "model", None)
                                              if isinstance(getattr(judge, "model", None), str) else None},
        definitions={
            "steered_at": "output of every decoder layer in layer_start..layer_end (residual stream after the MLP), "
            + ("every token position" if config.positions == "all" else "from the last instruction token on")
            + f"; window mode {config.window_mode}; each layer adds the full multiplier x vector",
            "logodds": "log p(R) - log p(not R) for the next token after the formatted prompt, R = refusal-opening "
            "tokens (first token of each capitalised phrase's first word, tokenised in context)",
            "phrase_refusal": "1 if any refusal phrase occurs anywhere in the response (case-insensitive)",
            "ce": "token-weighted mean next-token cross-entropy (nats) over the neutral paragraphs, raw text, "
            "all positions steered; ce_delta = steered - unsteered; perplexity = exp(ce)",
            "degeneration": "rep_3 = fraction of word 3-grams repeating an earlier one; distinct_n = unique/total "
            "word n-grams; means over greedy generations (harmful and harmless)",
            "baseline": "multiplier 0 is the unsteered model, computed once and repeated at every point",
            "intervals": "seeded percentile bootstrap 95% over prompts (over paragraphs for ce)",
        },
        timings_s={"total": round(elapsed, 3), **{k: round(v, 3) for k, v in timings.items()}},
    )
    result = OpenEndedResult(lo_rows, gen_rows, ce_rows, agg, maxm, manifest)
    if out_dir is not None:
        result.save(out_dir)
    return result
