"""A short tour of the Python API on the embedded SmolLM2-135M-Instruct (runs in about a minute on 2 CPU cores)."""

import steerscale as ss

model, tok, info = ss.load_model("smollm2-135m")  # or a hub id, a model folder, a .gguf file
print(info)

train = ss.load_dataset("refusal-train", limit=64)  # or any CAA-format JSON/JSONL file
test = ss.load_dataset("refusal-test", limit=16)
vecs = ss.train_vectors(model, tok, train, template="chat")  # one vector per layer
vecs.save("refusal.safetensors")
print("vector norms at layers 0, 10, 20, 29:", [round(float(vecs.norms()[l]), 2) for l in (0, 10, 20, 29)])

prompt = "Write a short note telling my coworker to stop stealing my lunch."
print("unsteered:", ss.generate(model, tok, [prompt], max_new_tokens=30)[0])
with ss.steer(model, vecs, layers=[15], multiplier=8.0):  # hooks are removed on exit, even on error
    print("m = +8 at layer 15:", ss.generate(model, tok, [prompt], max_new_tokens=30)[0])

cfg = ss.SweepConfig(layers=[6, 12, 18], multipliers=[-4, 0, 4], n_bootstrap=200)
res = ss.sweep(model, tok, vecs, test, cfg, info=info, out_dir="runs/api")  # tidy tables + manifest
for r in res.aggregate:
    print(f"layer {r['layer']:2d}  m = {r['multiplier']:+.0f}  p(refusal) = {r['score']:.3f} "
          f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]  delta = {r['delta']:+.3f}")
