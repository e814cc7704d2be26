"""Synthetic loader: prompt and output lengths drawn from named distributions.

Draws (prompt, output) pairs from the "lengths" random stream; pairs over
--max-prompt-tokens/--max-output-tokens are redrawn and counted as dropped, so the
trace has exactly -n requests from the truncated distributions.
"""

from __future__ import annotations

import numpy as np

from traces.distributions import LengthDist, parse_length_dist
from traces.errors import TraceError
from traces.progress import Reporter
from traces.records import (
    OUTPUT_TOO_LONG,
    PROMPT_TOO_LONG,
    LoadStats,
    SourceOptions,
    SourceRecords,
)
from traces.seeding import rng_for

_MAX_ROUNDS = 1000


def load_synthetic(opts: SourceOptions, reporter: Reporter) -> SourceRecords:
    """-n requests with lengths from --prompt-dist and --output-dist."""
    if not opts.num_requests:
        raise TraceError("--source synthetic needs -n (the number of requests)")
    if not opts.prompt_dist or not opts.output_dist:
        raise TraceError("--source synthetic needs --prompt-dist and --output-dist")
    prompt_dist = parse_length_dist(opts.prompt_dist, "--prompt-dist", "prompt_tokens")
    output_dist = parse_length_dist(opts.output_dist, "--output-dist", "output_tokens")
    rng = rng_for(opts.seed, "lengths")
    details = {"prompt_dist": prompt_dist.spec, "output_dist": output_dist.spec}
    stats = LoadStats("synthetic", details=details)
    n = opts.num_requests
    prompt = np.empty(0, dtype=np.int64)
    output = np.empty(0, dtype=np.int64)
    for _ in range(_MAX_ROUNDS):
        need = n - len(prompt)
        if need == 0:
            break
        p, o = _draw_pairs(prompt_dist, output_dist, rng, need, opts, stats)
        prompt, output = np.concatenate([prompt, p]), np.concatenate([output, o])
    else:
        raise TraceError(
            f"--max-prompt-tokens/--max-output-tokens reject nearly every draw of "
            f"--prompt-dist {opts.prompt_dist} / --output-dist {opts.output_dist}"
        )
    return SourceRecords(
        source="synthetic",
        record_id=[str(i) for i in range(n)],
        stats=stats,
        prompt_tokens=prompt,
        output_tokens=output,
    )


def _draw_pairs(
    prompt_dist: LengthDist,
    output_dist: LengthDist,
    rng: np.random.Generator,
    size: int,
    opts: SourceOptions,
    stats: LoadStats,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw `size` pairs and keep those within the limits, counting the rest as dropped."""
    prompt = prompt_dist.sample(rng, size)
    output = output_dist.sample(rng, size)
    stats.rows_read += size
    keep = np.ones(size, dtype=bool)
    for reason, values, limit in (
        (PROMPT_TOO_LONG, prompt, opts.max_prompt_tokens),
        (OUTPUT_TOO_LONG, output, opts.max_output_tokens),
    ):
        if limit is not None:
            over = keep & (values > limit)
            stats.drop(reason, int(over.sum()))
            keep &= ~over
    return prompt[keep], output[keep]
