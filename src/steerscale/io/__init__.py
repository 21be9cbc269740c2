"""Files in and out: the resumable point store, safetensors I/O, result tables and manifests, hostile-input guards, and llama.cpp / steering-vectors interop.

Import names from the module that defines them; this package re-exports nothing."""
