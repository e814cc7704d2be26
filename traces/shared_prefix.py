"""shared-prefix: a SYNTHETIC prefix-caching workload, as inference-perf's generator makes it.

G system prompts of S tokens, each shared by P questions of Q tokens, outputs of O tokens
(inference-perf's `shared_prefix` data config: num_groups, num_prompts_per_group,
system_prompt_len, question_len, output_len, with its defaults 10, 10, 100, 50, 50). As in
kubernetes-sigs/inference-perf (inference_perf/datagen/synthetic/shared_prefix_datagen.py
and inference_perf/loadgen/load_generator.py, at 7de5ef2e): the G x P prompts are made
group by group, shuffled once by a seeded permutation, and request i sends prompt
i mod (G x P) of that order; each --stages stage starts the cycle over, since its
run_stage asks the generator for its data anew.

Request (g, p)'s token ids are system prompt g's S ids followed by question (g, p)'s Q
ids, drawn from blake2b under (--seed, g[, p]) by traces/prefix.py, so its hash_ids
share exactly the system prompt's full blocks with its group. There is no prompt text:
live replay rebuilds token ids from the hash ids.
"""

from __future__ import annotations

import numpy as np

from traces.errors import TraceError
from traces.prefix import VLLM_BLOCK_TOKENS, BlockHasher, draw_token_ids
from traces.progress import Reporter
from traces.records import LoadStats, SourceOptions, SourceRecords
from traces.seeding import rng_for

DEFAULTS = {
    "num_groups": 10,
    "prompts_per_group": 10,
    "system_prompt_len": 100,
    "question_len": 50,
    "output_len": 50,
}
VOCAB_SIZE = 128_000  # ids are drawn from Llama-3's ordinary (non-special) vocabulary


def load_shared_prefix(opts: SourceOptions, reporter: Reporter) -> SourceRecords:
    """The requests of -n (or of every --stages stage), cycling through the shuffled prompts."""
    counts = opts.stage_counts or ((opts.num_requests,) if opts.num_requests else None)
    if counts is None:
        raise TraceError("--source shared-prefix needs -n or --stages (how many requests)")
    p = {k: getattr(opts, k) or v for k, v in DEFAULTS.items()}
    groups, per_group = p["num_groups"], p["prompts_per_group"]
    block = opts.hash_block_tokens or VLLM_BLOCK_TOKENS
    prompts: list[tuple[str, np.ndarray]] = []
    with reporter.task("generating shared-prefix prompts", groups * per_group) as advance:
        for g in range(groups):
            system = _ids(opts.seed, p["system_prompt_len"], "system", g)
            after_system = BlockHasher(block).extend(system)
            for q in range(per_group):
                question = _ids(opts.seed, p["question_len"], "question", g, q)
                hash_ids = after_system.copy().extend(question).hash_ids()
                prompts.append((f"g{g}-p{q}", np.asarray(hash_ids, dtype=np.int64)))
            advance(per_group)
    order = rng_for(opts.seed, "shared-prefix").permutation(len(prompts))
    sent = order[np.concatenate([np.arange(c) % len(prompts) for c in counts])]
    n = len(sent)
    stats = LoadStats("shared-prefix", details=_details(p))
    stats.rows_read = n
    return SourceRecords(
        source="shared-prefix",
        record_id=[prompts[i][0] for i in sent],
        stats=stats,
        prompt_tokens=np.full(n, p["system_prompt_len"] + p["question_len"], dtype=np.int64),
        output_tokens=np.full(n, p["output_len"], dtype=np.int64),
        hash_ids=[prompts[i][1] for i in sent],
        hash_block_tokens=block,
    )


def _ids(seed: int, n: int, *key: object) -> list[int]:
    return draw_token_ids(f"shared-prefix/{seed}/{'/'.join(map(str, key))}".encode(), n, VOCAB_SIZE)


def _details(params: dict) -> dict:
    return {
        "synthetic": True,
        "shared_prefix": {
            **params,
            "vocab_size": VOCAB_SIZE,
            "order": "G x P prompts shuffled once (seeded), sent in a cycle; each stage "
            "starts the cycle over (as inference-perf)",
        },
    }
