"""CAA-format loading, clear errors for bad files, and exact answer-letter tokens."""

import json

import pytest

from steerscale.core.prompts import encode_item, format_prompt
from steerscale.core.data import load_dataset, load_prompts, parse_item
from steerscale.errors import SteerscaleError


def caa(q="Help me?", a="Sure.", b="No.", match="(B)", nomatch="(A)", **extra):
    return dict({"question": f"{q}\n\nChoices:\n(A) {a}\n(B) {b}", "answer_matching_behavior": match,
                 "answer_not_matching_behavior": nomatch}, **extra)


def write(tmp_path, name, obj=None, text=None, raw=None):
    p = tmp_path / name
    if raw is not None:
        p.write_bytes(raw)
    else:
        p.write_text(text if text is not None else json.dumps(obj))
    return p


def test_load_json_and_jsonl(tmp_path):
    items = [caa(q=f"q{i}") for i in range(3)]
    a = load_dataset(write(tmp_path, "d.json", items))
    b = load_dataset(write(tmp_path, "d.jsonl", text="\n".join(json.dumps(i) for i in items) + "\n"))
    assert a == b and len(a) == 3
    assert a[0].matching == "B" and a[0].not_matching == "A" and a[0].choices == ("A", "B")


def test_more_than_two_choices():
    it = parse_item({"question": "Pick\n\nChoices:\n(A) x\n(B) y\n(C) z\n(D) w\n(E) v\n(F) u\n(G) t\n(H) s",
                     "answer_matching_behavior": "(H)", "answer_not_matching_behavior": "(C)"})
    assert it.choices == tuple("ABCDEFGH") and it.matching == "H" and it.not_matching == "C"


def test_answer_without_parentheses_is_accepted():
    assert parse_item(caa(match="B", nomatch=" (A) ")).matching == "B"


@pytest.mark.parametrize("name,content,match", [
    ("bad.json", "[{", r"bad\.json: invalid JSON at line 1"),
    ("bad.jsonl", '{"question": 1}\n{oops\n', r"bad\.jsonl: line 2: invalid JSON"),
    ("empty.json", "", "file is empty"),
    ("emptylist.json", "[]", "dataset is empty"),
    ("obj.json", '{"a": 1}', "expected a JSON list"),
])
def test_bad_files(tmp_path, name, content, match):
    with pytest.raises(SteerscaleError, match=match):
        load_dataset(write(tmp_path, name, text=content))


@pytest.mark.parametrize("record,match", [
    ({"question": "x\n\nChoices:\n(A) a\n(B) b", "answer_matching_behavior": "(A)"},
     "item 0: missing key 'answer_not_matching_behavior'"),
    (caa(match="(C)"), r"item 0: field 'answer_matching_behavior' is '\(C\)', not one of the choices \(A, B\)"),
    (caa(match="(A)", nomatch="(A)"), "both"),
    (caa(match="yes"), "expected a letter"),
    ({"question": "no choices here", "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"},
     "lists 0 choice"),
    ({"question": 5, "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"}, "must be a string"),
    ("just a string", "expected a JSON object"),
])
def test_bad_records(tmp_path, record, match):
    with pytest.raises(SteerscaleError, match=match):
        load_dataset(write(tmp_path, "d.json", [record]))


def test_duplicates_and_encoding(tmp_path):
    with pytest.raises(SteerscaleError, match="item 1 duplicates item 0"):
        load_dataset(write(tmp_path, "dup.json", [caa(), caa()]))
    assert len(load_dataset(write(tmp_path, "dup.json", [caa(), caa()]), allow_duplicates=True)) == 2
    with pytest.raises(SteerscaleError, match="not UTF-8"):
        load_dataset(write(tmp_path, "latin.json", raw=json.dumps([caa(q="caf\u00e9")]).encode("latin-1").replace(b"\\u00e9", b"\xe9")))
    with pytest.raises(SteerscaleError, match="no such file"):
        load_dataset(tmp_path / "missing.json")


def test_prompts(tmp_path):
    assert load_prompts(write(tmp_path, "p.json", ["a", {"prompt": "b"}])) == ["a", "b"]
    with pytest.raises(SteerscaleError, match="item 1"):
        load_prompts(write(tmp_path, "p.json", ["a", {"text": "b"}]))


def test_letter_token_is_located_exactly():
    from conftest import TinyTokenizer

    tok = TinyTokenizer()
    it = parse_item(caa())
    e = encode_item(tok, it, template="llama2")
    assert e.letter_ids == {"A": tok("A").input_ids[0], "B": tok("B").input_ids[0]}
    prompt = format_prompt(tok, it.question, "llama2")
    assert e.prefix_ids == tok(prompt + "(").input_ids
    assert e.instruction_end == len(tok(prompt.rstrip()).input_ids) - 1


def test_letter_not_single_token_fails():
    from conftest import TinyTokenizer

    class Merging(TinyTokenizer):
        def __call__(self, text, add_special_tokens=True):
            r = super().__call__(text.replace("(A", "\x01"))
            return r

    with pytest.raises(SteerscaleError, match="answer letter 'A'.*not a single token"):
        encode_item(Merging(), parse_item(caa()), template="plain")


def test_chat_template_required():
    from conftest import TinyTokenizer

    with pytest.raises(SteerscaleError, match="no chat template"):
        format_prompt(TinyTokenizer(), "hi", "chat")
