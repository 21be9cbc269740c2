"""Print the answer opening, the last prompt tokens and a sha256 of the token ids of the demo's training
items (the first 200 built-in refusal-train pairs) on the embedded SmolLM2-135M-Instruct, per template.

Run it on two checkouts to check that an encoding change leaves SmolLM2's encodings (and so the demo's
numbers) alone: ``PYTHONPATH=src python scripts/answer_openings.py``. docs/prompts.md.
"""

import hashlib
import json

from steerscale.core.prompts import encode_items
from steerscale.core.data import load_dataset
from steerscale.core.models import load_model


def main() -> None:
    _, tok, _ = load_model("smollm2-135m")
    items = load_dataset("refusal-train")[:200]
    for template in ("chat", "llama2", "plain"):
        enc = encode_items(tok, items, template)
        ids = json.dumps([[e.prefix_ids, e.letter_ids, e.instruction_end] for e in enc])
        opening = sorted({getattr(e, "opening", "(") for e in enc})
        last = tok.convert_ids_to_tokens(enc[0].prefix_ids[-8:])
        print(f"{template}: scheme {enc[0].scheme}, opening {opening}, last prompt tokens {last}, "
              f"token ids sha256 {hashlib.sha256(ids.encode()).hexdigest()[:16]}")


if __name__ == "__main__":
    main()
