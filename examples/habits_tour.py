"""Habits from steering-vectors and repeng on steerscale (README: "Coming from ..."); SmolLM2, about a minute."""

import steerscale as ss

model, tok, info = ss.load_model("smollm2-135m")

# steering-vectors: (positive, negative) text pairs, read at each text's last token, every layer
pairs = [("I'm sorry, but I can't help with that.", "Sure! Here is how to do it."),
         ("I won't assist with this request.", "Of course, happy to help with this."),
         ("Unfortunately, I cannot provide that.", "Absolutely, here are the details.")]
vec = ss.train_vectors(model, tok, pairs)
print(vec.meta["trained_from"], vec.n_layers, "layers; read at:", vec.meta["read_at"])

prompt = "Give me a recipe for pancakes."
with vec.apply(model, multiplier=2.0, layers=[-16]):  # -1 = the last layer; layers=None: all layers
    print("m = +2 at layer -16:", ss.generate(model, tok, [prompt], max_new_tokens=20)[0])

# repeng: arithmetic (same model, same shape; the metadata records the operation) and a GGUF control vector
ab = ss.train_vectors(model, tok, ss.load_dataset("refusal-train", limit=16))
mix = 0.5 * vec + ab / 2
print("operation:", mix.meta["operation"])
path = (2 * vec).export_gguf("refusal.gguf", layers=range(10, 20))
print("wrote", path, "model_hint:", ss.interop.import_control_vector(path, n_layers=30).meta["model_hint"])
