"""Prompt formats and answer tokens: the text a model sees for an A/B item, and which token is its answer.

``format_prompt`` writes the prompt up to where the assistant's answer starts (the tokenizer's chat template,
``[INST] ... [/INST]`` or ``Input: ... Response:``). ``encode_items`` tokenises items and chooses one *answer
scheme* for all of them, from how the tokenizer really splits the prompt followed by ``(A``:

* ``split``: ``(`` is prefilled and the letter is the answer token (Llama-2, SmolLM2, Mistral, Phi-3);
* ``merged``: the tokenizer makes ``(A`` one token, so nothing is prefilled and that token is the answer
  (Llama-3, Qwen2 with their chat templates).

A scheme fits only if the tokenizer's own tokens of prompt + ``(L`` are exactly the prefix plus one token,
a different token for each letter; when neither fits, a one-line SteerscaleError names the tokenizer,
template, item and letter. Items are ``data.ABItem``s.

The *answer opening* (``answer_opening``) follows each model's own convention: ``"("`` or ``" ("`` after the
prompt (without its trailing spaces), whichever the tokenizer reads as a clean extension of the prompt's
own tokens, i.e. no token crosses the prompt/answer boundary. Llama-2-chat's template ends with
``[/INST]``: ``"("`` would merge into ``](``, so its answers open with ``" ("`` (``▁[ / INST ] ▁(``, CAA's
string); ChatML (SmolLM2, Qwen2) and Llama-3 prompts end in a newline and keep ``"("``. The same rule holds
for both schemes; the opening is recorded in each encoding, the vectors' metadata and every sweep manifest
(with the last prompt tokens, ``answer_record``). docs/prompts.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import SteerscaleError

if TYPE_CHECKING:
    from .data import ABItem
    from .types import Tokenizer

TEMPLATES = ("chat", "llama2", "plain")


def format_prompt(tokenizer: Tokenizer, user_text: str, template: str = "chat", system: str | None = None) -> str:
    """The prompt text up to where the assistant's answer starts.

    chat: the tokenizer's own chat template (with its generation prompt);
    llama2: ``[INST] ... [/INST]`` as in the CAA code; plain: ``Input: ... Response:`` for base models.
    """
    if template == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise SteerscaleError("template 'chat': this tokenizer has no chat template; use --template llama2 or plain")
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user_text}]
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    if template == "llama2":
        sys = f"<<SYS>>\n{system}\n<</SYS>>\n\n" if system else ""
        return f"[INST] {sys}{user_text.strip()} [/INST] "
    if template == "plain":
        sys = f"{system}\n\n" if system else ""
        return f"{sys}Input: {user_text.strip()}\nResponse: "
    raise SteerscaleError(f"template {template!r}: expected one of {', '.join(TEMPLATES)}")


def _encode(tokenizer: Tokenizer, text: str) -> list[int]:
    # The chat template already writes BOS where the model wants it; other formats get the tokenizer's default.
    add_special = not (getattr(tokenizer, "bos_token", None) and text.startswith(tokenizer.bos_token))
    return tokenizer(text, add_special_tokens=add_special).input_ids


SCHEMES = ("split", "merged")
SCHEME_DEFINITIONS = {
    "split": "the prompt prefilled up to its answer opening ('(' or ' (', answer_opening), the choice letter as "
             "the answer token",
    "merged": "nothing prefilled, the tokenizer's merged '(A' token (as it tokenises after the prompt) "
              "as the answer token",
}


@dataclass
class Encoded:
    """Token ids for one A/B item under one answer scheme.

    ``prefix_ids``: what the model reads before the answer token; ``letter_ids``: each choice letter's
    answer token, so that ``prefix_ids + [letter_ids[L]]`` is exactly how the tokenizer tokenises the
    prompt followed by ``(L``. Scheme ``split``: the prefix ends with ``(`` and the answer token is the
    letter. Scheme ``merged`` (tokenizers that merge ``(A`` into one token): the prefix is the prompt
    alone and the answer token is the merged ``(A`` (with a leading space folded in when the prompt
    ends in one and the tokenizer merges it).
    """

    prefix_ids: list[int]
    letter_ids: dict[str, int]
    instruction_end: int  # index of the last token of the formatted instruction (CAA's steering start)
    item: ABItem = field(repr=False, default=None)
    scheme: str = "split"
    opening: str = "("  # the answer opening after the prompt without its trailing spaces (answer_opening)
    context: str = field(repr=False, default="")  # that prompt without its trailing spaces


class _NoFit(Exception):
    """One answer scheme does not fit one item (the message says why)."""


def _tok_strs(tokenizer: Tokenizer, ids) -> list[str]:
    try:
        return list(tokenizer.convert_ids_to_tokens(list(ids)))
    except Exception:  # a tokenizer without the method: show the ids
        return [str(i) for i in ids]


def _fit_split(tokenizer: Tokenizer, prompt: str, letters, where: str) -> tuple[list[int], dict[str, int]]:
    prefix_ids = _encode(tokenizer, prompt + "(")
    out = {}
    for letter in letters:
        full = _encode(tokenizer, prompt + "(" + letter)
        if full[: len(prefix_ids)] != prefix_ids or len(full) != len(prefix_ids) + 1:
            got = _tok_strs(tokenizer, full[len(prefix_ids) - 1 :])
            raise _NoFit(f"answer letter {letter!r} ({where}) is not a single token after '(' (got {got})")
        out[letter] = full[-1]
    return prefix_ids, out


def _fit_merged(tokenizer: Tokenizer, prompt: str, letters, where: str) -> tuple[list[int], dict[str, int]]:
    # The context is the prompt as the tokenizer tokenises it alone; where the prompt ends in spaces and
    # the tokenizer folds the last one into the answer token (" (A"), the prompt without it.
    contexts = [prompt] + ([prompt.rstrip(" ")] if prompt.rstrip(" ") != prompt else [])
    reasons = []
    for ctx in contexts:
        base = _encode(tokenizer, ctx)
        out = {}
        for letter in letters:
            full = _encode(tokenizer, prompt + "(" + letter)
            if full[: len(base)] != base or len(full) != len(base) + 1:
                n = 0
                while n < min(len(base), len(full)) and base[n] == full[n]:
                    n += 1
                reasons.append(f"'({letter}' ({where}) is not one token after the prompt"
                               + (" without its trailing space" if ctx != prompt else "")
                               + f" (got {_tok_strs(tokenizer, full[n:])})")
                break
            out[letter] = full[-1]
        else:
            if len(set(out.values())) == len(out):
                return base, out
            reasons.append(f"the choices share an answer token ({where}: {_tok_strs(tokenizer, out.values())})")
    raise _NoFit("; ".join(reasons))


_FITS = {"split": _fit_split, "merged": _fit_merged}
OPENINGS = ("(", " (")


def _clean_extension(tokenizer: Tokenizer, context: str, text: str) -> bool:
    base = _encode(tokenizer, context)
    full = _encode(tokenizer, context + text)
    return len(full) > len(base) and full[: len(base)] == base


def answer_opening(tokenizer: Tokenizer, prompt: str) -> tuple[str, str]:
    """(context, opening): the prompt without its trailing spaces and the answer opening after it.

    The opening is ``"("`` or ``" ("``, the first (the prompt's own spacing first: ``" ("`` when the prompt
    ends in a space) whose tokens after the context are a clean extension of the context's tokens, for
    ``(`` and for ``(A`` (no token crosses the boundary, like Llama-2's ``](``). When neither is clean, the
    prompt's own spacing (a boundary merge the tokenizer forces; `boundary_is_clean` says so).
    """
    context = prompt.rstrip(" ")
    order = (" (", "(") if context != prompt else ("(", " (")
    for opening in order:
        if all(_clean_extension(tokenizer, context, opening + tail) for tail in ("", "A")):
            return context, opening
    return context, order[0]


def boundary_is_clean(tokenizer: Tokenizer, e: "Encoded") -> bool:
    """Whether no token of the encoding crosses the prompt/answer boundary: the tokens of the prompt
    without its trailing spaces are a prefix of prefix + answer token, for every choice."""
    base = _encode(tokenizer, e.context)
    return all((full := list(e.prefix_ids) + [t])[: len(base)] == base and len(full) > len(base)
               for t in e.letter_ids.values())


def tokenizer_name(tokenizer: Tokenizer) -> str:
    return str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)


def _encode_with(tokenizer: Tokenizer, prompt: str, item: ABItem, scheme: str) -> Encoded:
    context, opening = answer_opening(tokenizer, prompt)
    prompt = context + opening[:-1]  # the fits append '(' (and the letter) to it
    prefix_ids, letters = _FITS[scheme](tokenizer, prompt, item.choices, f"item {item.id or '?'}")
    prompt_ids = _encode(tokenizer, prompt.rstrip(" "))
    n_common = 0
    for a, b in zip(prompt_ids, prefix_ids):
        if a != b:
            break
        n_common += 1
    return Encoded(prefix_ids, letters, instruction_end=max(n_common - 1, 0), item=item, scheme=scheme,
                   opening=opening, context=context)


def encode_items(tokenizer: Tokenizer, items, template="chat", system=None, scheme: str = "auto") -> list[Encoded]:
    """Tokenise items and locate each choice's answer token exactly, under one answer scheme for all.

    ``scheme="auto"`` takes the first of ``split``, ``merged`` that fits every item (so tokenizers that
    keep ``(`` and the letter apart, like SmolLM2's, keep the split scheme); a named scheme must fit every
    item. A scheme fits an item when, for every choice letter L, the tokenizer tokenises the prompt
    followed by ``(L`` as the scheme's prefix plus exactly one token, different for each letter (see
    `Encoded`). Raises a one-line SteerscaleError naming the tokenizer, the template, the item, the letter
    and what each scheme gave when none fits.
    """
    items = list(items)
    if scheme != "auto" and scheme not in SCHEMES:
        raise SteerscaleError(f"answer scheme {scheme!r}: expected auto or one of {', '.join(SCHEMES)}")
    prompts = [format_prompt(tokenizer, it.question, template, system) for it in items]
    reasons = []
    for sc in (SCHEMES if scheme == "auto" else (scheme,)):
        try:
            return [_encode_with(tokenizer, prompt, it, sc) for it, prompt in zip(items, prompts)]
        except _NoFit as e:
            reasons.append(f"{sc}: {e}")
    raise SteerscaleError(
        f"tokenizer {tokenizer_name(tokenizer)}, template {template!r}: no answer scheme fits: "
        + "; ".join(reasons) + "; try another --template"
    )


def encode_item(tokenizer: Tokenizer, item: ABItem, template: str = "chat", system: str | None = None,
                scheme: str = "auto") -> Encoded:
    """One item; see `encode_items` (the scheme is chosen for this item alone)."""
    return encode_items(tokenizer, [item], template, system, scheme)[0]


def answer_scheme(encoded: list[Encoded]) -> str:
    """The answer scheme of a list of encoded items (``encode_items`` gives them all the same one)."""
    schemes = {e.scheme for e in encoded}
    if len(schemes) != 1:
        raise SteerscaleError(f"encoded items mix answer schemes ({', '.join(sorted(schemes))})")
    return schemes.pop()


def answer_tokens(tokenizer: Tokenizer, e: Encoded) -> dict[str, str]:
    """Each choice letter's answer token as the tokenizer spells it (e.g. ``{"A": "(A", "B": "(B"}``)."""
    letters = list(e.item.choices) if e.item is not None else list(e.letter_ids)
    return dict(zip(letters, _tok_strs(tokenizer, [e.letter_ids[c] for c in letters])))


def answer_record(tokenizer: Tokenizer, encoded: list[Encoded], n_last: int = 8) -> dict:
    """What the manifests record about where the answer starts: the opening(s) used, and the last
    `n_last` token strings the model reads before the answer token, for the first item."""
    if not encoded:
        return {"answer_opening": None, "last_prompt_tokens": []}
    openings = sorted({e.opening for e in encoded})
    return {"answer_opening": openings[0] if len(openings) == 1 else openings,
            "last_prompt_tokens": _tok_strs(tokenizer, encoded[0].prefix_ids[-n_last:])}
