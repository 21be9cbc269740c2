"""Alias kept for one release: open-ended refusal, capability cost, judges and transfer moved to
`steerscale.measures` (refusal, capability, judges, transfer, openended_config / openended_run /
openended_tables / openended_store). Every public name this module had is re-exported here unchanged.
"""

from .measures.capability import CrossEntropy, degeneration, neutral_cross_entropy
from .measures.judges import JUDGE_PROMPT, HFJudge, HTTPJudge, parse_verdict
from .measures.openended_config import OpenEndedConfig
from .measures.openended_run import run_openended
from .measures.openended_tables import (
    AGG_COLUMNS, CE_COLUMNS, GEN_COLUMNS, LOGODDS_COLUMNS, MAXMULT_COLUMNS, OpenEndedResult,
    max_multiplier_under_bound, read_openended,
)
from .measures.refusal import LogOdds, PhraseMatcher, opening_token_ids, refusal_logodds
from .measures.transfer import transfer_effect

__all__ = ["CrossEntropy", "degeneration", "neutral_cross_entropy", "JUDGE_PROMPT", "HFJudge", "HTTPJudge",
           "parse_verdict", "OpenEndedConfig", "run_openended", "AGG_COLUMNS", "CE_COLUMNS", "GEN_COLUMNS",
           "LOGODDS_COLUMNS", "MAXMULT_COLUMNS", "OpenEndedResult", "max_multiplier_under_bound", "read_openended",
           "LogOdds", "PhraseMatcher", "opening_token_ids", "refusal_logodds", "transfer_effect"]
