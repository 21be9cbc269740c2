"""What steering does to a model, measured: refusal, over-refusal and capability cost, judges, transfer, and the
open-ended sweep that takes them at every (window, multiplier).

Modules (one job each; docs/architecture/measures.md says where to add a measure or a judge):

* `refusal`: `PhraseMatcher` (refusal phrases in generated text), `refusal_logodds` (first response token).
* `capability`: `neutral_cross_entropy` / `CrossEntropy` (CE and its paired increase), `degeneration`.
* `judges`: `HTTPJudge`, `HFJudge`, `parse_verdict`; `httpclient`: the judge's bounded HTTP POST.
* `transfer`: `transfer_effect` across models, on the one relative-depth layer map (`vectors.map_layers`).
* `openended_run` / `openended_tables` / `openended_store`: the open-ended sweep's (its configuration is
  `config.OpenEndedConfig`) loop, tables and point store.

"""

from .capability import CrossEntropy, degeneration, neutral_cross_entropy
from .judges import JUDGE_PROMPT, HFJudge, HTTPJudge, parse_verdict
from .refusal import LogOdds, PhraseMatcher, opening_token_ids, refusal_logodds

__all__ = ["CrossEntropy", "degeneration", "neutral_cross_entropy", "JUDGE_PROMPT", "HFJudge", "HTTPJudge",
           "parse_verdict", "LogOdds", "PhraseMatcher", "opening_token_ids", "refusal_logodds"]
