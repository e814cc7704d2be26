"""Live mode: the same traces and policies against a real vLLM (not built yet)."""
