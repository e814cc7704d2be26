"""Training objectives, by spec string, and how each turns the head's outputs into a
score (higher = predicted shorter, the paper's sign).

- listmle: the paper's loss. A list of prompts, ranked by output length in bins of
  `label_bin_tokens` (equal bins tie; ties are put in random order, as the paper's code
  does), and -log of the Plackett-Luce probability of that ranking under the scores.
- pairwise[:margin=M]: margin ranking over every pair in a batch whose bins differ.
- mse: regression of log(1 + output tokens); score = minus the prediction.
- classify:buckets=N[,width=W | ,percentile]: cross-entropy over N length buckets, equal
  width W (default: the longest training output / N) or equal count (percentile); the
  last bucket is open. Score = minus the expected bucket index under the softmax (a
  continuous score; ranking by argmax bucket would tie most pairs).

Distributional heads predict, per prompt, a distribution over output length on the
shared bins of policies/lengthdist.py (NUM_BINS bins, log-spaced past 8 tokens); the
score is minus its median in tokens, so ranking and tau work on them unchanged:
- nll[:smooth=S]: NUM_BINS logits, softmax = the histogram; loss = cross-entropy of the
  true length's bin, the negative log-likelihood. With smooth=S the target keeps 1 - S
  on the true bin and gives S to its neighbours (S/2 each; all S to the one neighbour of
  an end bin). The median is read off the histogram's CDF, linear in log(tokens) inside
  a bin (lengthdist.quantile_tokens), so it is continuous and rarely ties.
- quantile: pinball loss for log(tokens) at QUANTILE_LEVELS; the head is monotone (first
  output, then softplus increments), so quantiles never cross. Its histogram is the CDF
  through those quantiles, linear in log(tokens), 0 at 1 token and 1 at MAX_TOKENS.
Both heads start from the training set's marginal (bias = log bin shares, or the
marginal's quantiles), so the untrained model is the prompt-blind baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from policies.lengthdist import (
    BIN_EDGES,
    MAX_TOKENS,
    NUM_BINS,
    bin_of,
    from_counts,
    histogram,
    quantile_tokens,
)
from predictor.errors import PredictorError

if TYPE_CHECKING:
    import torch
    from torch import nn

LOSSES = ("listmle", "pairwise", "mse", "classify", "nll", "quantile")
DISTRIBUTIONAL = ("nll", "quantile")
QUANTILE_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
MARGINAL_PSEUDO_COUNT = 0.5  # added to each bin's count of a training-length histogram


@dataclass(frozen=True)
class LossSpec:
    """A parsed `--loss` spec."""

    kind: str
    buckets: int = 0
    width: float = 0.0
    percentile: bool = False
    margin: float = 1.0
    edges: tuple[float, ...] = field(default=())  # classify: upper bucket bounds, fitted
    smooth: float = 0.0  # nll: label mass moved to the neighbouring bins
    quantiles: tuple[float, ...] = field(default=())  # quantile: the levels it predicts

    @property
    def distributional(self) -> bool:
        return self.kind in DISTRIBUTIONAL

    @property
    def num_outputs(self) -> int:
        if self.kind == "nll":
            return NUM_BINS
        if self.kind == "quantile":
            return len(self.quantiles)
        return self.buckets if self.kind == "classify" else 1

    def describe(self) -> str:
        if self.kind == "nll" and self.smooth:
            return f"nll:smooth={self.smooth:g}"
        if self.kind == "classify":
            how = ",percentile" if self.percentile else f",width={self.width:g}"
            return f"classify:buckets={self.buckets}{how}"
        if self.kind == "pairwise":
            return f"pairwise:margin={self.margin:g}"
        return self.kind

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.describe(),
            "kind": self.kind,
            "buckets": self.buckets,
            "width": self.width,
            "percentile": self.percentile,
            "margin": self.margin,
            "edges": list(self.edges),
            "smooth": self.smooth,
            "quantiles": list(self.quantiles),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LossSpec:
        return cls(
            kind=raw["kind"],
            buckets=int(raw["buckets"]),
            width=float(raw["width"]),
            percentile=bool(raw["percentile"]),
            margin=float(raw["margin"]),
            edges=tuple(float(e) for e in raw["edges"]),
            smooth=float(raw.get("smooth", 0.0)),
            quantiles=tuple(float(q) for q in raw.get("quantiles", ())),
        )


def parse_loss(spec: str) -> LossSpec:
    """`listmle`, `pairwise[:margin=M]`, `mse`, `classify:buckets=N[,width=W|,percentile]`,
    `nll[:smooth=S]` or `quantile`."""
    kind, _, rest = spec.strip().partition(":")
    if kind not in LOSSES:
        raise PredictorError(
            f"unknown loss {kind!r} in {spec!r}: choose one of {', '.join(LOSSES)}"
        )
    params: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        params[key] = value if eq else "true"
    allowed = {
        "classify": {"buckets", "width", "percentile"},
        "pairwise": {"margin"},
        "nll": {"smooth"},
    }
    unknown = set(params) - allowed.get(kind, set())
    if unknown:
        raise PredictorError(f"loss {spec!r}: unknown parameter(s) {', '.join(sorted(unknown))}")
    try:
        numbers = {k: float(v) for k, v in params.items() if k != "percentile"}
        if not all(map(math.isfinite, numbers.values())):
            raise ValueError
    except ValueError:
        raise PredictorError(f"loss {spec!r}: parameters must be numbers") from None
    if kind == "pairwise":
        return LossSpec(kind, margin=numbers.get("margin", 1.0))
    if kind == "nll":
        smooth = numbers.get("smooth", 0.0)
        if not 0 <= smooth < 1:
            raise PredictorError(f"loss {spec!r}: smooth must be in [0, 1)")
        return LossSpec(kind, smooth=smooth)
    if kind == "quantile":
        return LossSpec(kind, quantiles=QUANTILE_LEVELS)
    if kind != "classify":
        return LossSpec(kind)
    if "buckets" not in params:
        raise PredictorError(f"loss {spec!r}: classify needs buckets=N")
    buckets, width = int(numbers["buckets"]), numbers.get("width", 0.0)
    if buckets != numbers["buckets"]:
        raise PredictorError(f"loss {spec!r}: buckets must be a whole number")
    percentile = params.get("percentile") == "true"
    if buckets < 2:
        raise PredictorError(f"loss {spec!r}: buckets must be >= 2")
    if width < 0 or (width and percentile):
        raise PredictorError(f"loss {spec!r}: give width=W > 0 or percentile, not both")
    return LossSpec(kind, buckets=buckets, width=width, percentile=percentile)


def fit_buckets(spec: LossSpec, lengths: np.ndarray) -> LossSpec:
    """Fix a classify spec's bucket edges on the training lengths (no-op for the others)."""
    if spec.kind != "classify":
        return spec
    n = spec.buckets
    if spec.percentile:
        edges = np.quantile(lengths, np.arange(1, n) / n)
        return LossSpec(spec.kind, buckets=n, percentile=True, edges=tuple(map(float, edges)))
    width = spec.width or math.ceil(float(lengths.max()) / n)
    edges = tuple(float(width * k) for k in range(1, n))
    return LossSpec(spec.kind, buckets=n, width=float(width), edges=edges)


def bucket_of(spec: LossSpec, lengths: np.ndarray) -> np.ndarray:
    """Bucket k holds lengths in [edges[k-1], edges[k])."""
    return np.searchsorted(np.asarray(spec.edges), lengths, side="right")


def listmle(
    scores: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """-log P(true ranking) under Plackett-Luce; lower label = shorter = should rank first.

    scores, labels: shape [n], one list. Ties are shuffled with `generator`.
    """
    import torch

    perm = torch.randperm(len(scores), generator=generator).to(scores.device)
    scores, labels = scores[perm], labels[perm]
    order = torch.sort(labels, stable=True).indices
    s = scores[order]
    # Term i: log sum_{j >= i} exp(s_j) - s_i, the log-normaliser over the items left.
    tail = torch.logcumsumexp(s.flip(0), dim=0).flip(0)
    return (tail - s).sum()


def pairwise(scores: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean hinge max(0, margin - (s_short - s_long)) over pairs whose labels differ."""
    diff = scores[:, None] - scores[None, :]
    shorter = labels[:, None] < labels[None, :]
    if not shorter.any():
        return scores.sum() * 0.0
    return (margin - diff[shorter]).clamp(min=0).mean()


def bin_targets(lengths: np.ndarray, smooth: float = 0.0) -> np.ndarray:
    """Target distributions over the length bins, [n, NUM_BINS]: 1 on each length's bin,
    or 1 - smooth there and smooth shared by its neighbours (all of it to the one
    neighbour of an end bin)."""
    b = bin_of(np.asarray(lengths))
    rows = np.arange(len(b))
    target = np.zeros((len(b), NUM_BINS))
    target[rows, b] = 1.0 - smooth
    left, right = b - 1, b + 1
    has_left, has_right = left >= 0, right < NUM_BINS
    share = smooth / (has_left.astype(np.float64) + has_right)
    target[rows[has_left], left[has_left]] += share[has_left]
    target[rows[has_right], right[has_right]] += share[has_right]
    return target


def nll(logits: torch.Tensor, lengths: np.ndarray, smooth: float = 0.0) -> torch.Tensor:
    """Mean -log p(true length's bin) under softmax(logits) (cross-entropy against the
    smoothed target when smooth > 0)."""
    import torch
    import torch.nn.functional as F

    if smooth:
        target = torch.as_tensor(bin_targets(lengths, smooth), dtype=logits.dtype)
        return F.cross_entropy(logits, target.to(logits.device))
    return F.cross_entropy(logits, torch.as_tensor(bin_of(lengths), device=logits.device))


def log_quantiles(outputs: torch.Tensor) -> torch.Tensor:
    """The quantile head's outputs as increasing quantiles of log(tokens): the first
    output, then softplus increments."""
    import torch
    import torch.nn.functional as F

    steps = torch.cumsum(F.softplus(outputs[:, 1:]), dim=1)
    return torch.cat([outputs[:, :1], outputs[:, :1] + steps], dim=1)


def pinball(
    quantiles: torch.Tensor, target: torch.Tensor, levels: tuple[float, ...]
) -> torch.Tensor:
    """Mean pinball (quantile) loss: max(tau (y - q), (tau - 1) (y - q)) over rows and
    levels tau."""
    import torch

    tau = torch.tensor(levels, dtype=quantiles.dtype, device=quantiles.device)
    diff = target[:, None] - quantiles
    return torch.maximum(tau * diff, (tau - 1) * diff).mean()


def quantiles_to_distribution(log_quantiles: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """Bin probabilities [n, NUM_BINS] of the CDF through the points (q_i, level_i),
    linear in log(tokens), from 0 at 1 token to 1 at MAX_TOKENS."""
    top = math.log(MAX_TOKENS)
    n, m = log_quantiles.shape
    knots_x = np.concatenate(
        [np.zeros((n, 1)), np.clip(log_quantiles, 0.0, top), np.full((n, 1), top)], axis=1
    )
    knots_x = np.maximum.accumulate(knots_x, axis=1) + np.arange(m + 2) * 1e-9  # increasing
    knots_f = np.array([0.0, *levels, 1.0])
    log_edges = np.log(BIN_EDGES)
    cdf = np.stack([np.interp(log_edges, x, knots_f) for x in knots_x])
    cdf[:, 0], cdf[:, -1] = 0.0, 1.0
    return np.diff(cdf, axis=1)


class Objective:
    """A loss spec bound to the label it trains on; `loss` for training, `score` for use."""

    def __init__(self, spec: LossSpec, label_bin_tokens: int = 10):
        self.spec = spec
        self.label_bin_tokens = label_bin_tokens

    def loss(
        self, outputs: torch.Tensor, lengths: np.ndarray, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """outputs: [n, num_outputs] from the model; lengths: true output tokens, [n]."""
        import torch
        import torch.nn.functional as F

        device = outputs.device
        kind = self.spec.kind
        if kind in ("listmle", "pairwise"):
            bins = torch.as_tensor(lengths // self.label_bin_tokens, device=device)
            if kind == "listmle":
                return listmle(outputs[:, 0], bins, generator)
            return pairwise(outputs[:, 0], bins, self.spec.margin)
        if kind == "mse":
            target = torch.as_tensor(np.log1p(lengths), dtype=outputs.dtype, device=device)
            return F.mse_loss(outputs[:, 0], target)
        if kind == "nll":
            return nll(outputs, lengths, self.spec.smooth)
        if kind == "quantile":
            log_tokens = np.log(np.maximum(np.asarray(lengths, dtype=np.float64), 1.0))
            target = torch.as_tensor(log_tokens, dtype=outputs.dtype, device=device)
            return pinball(log_quantiles(outputs), target, self.spec.quantiles)
        target = torch.as_tensor(bucket_of(self.spec, lengths), device=device)
        return F.cross_entropy(outputs, target)

    def score(self, outputs: torch.Tensor) -> torch.Tensor:
        """Higher = predicted shorter (distributional heads: minus the median, tokens)."""
        import torch

        if self.spec.kind in ("listmle", "pairwise"):
            return outputs[:, 0]
        if self.spec.kind == "mse":
            return -outputs[:, 0]
        if self.spec.kind == "nll":
            median = quantile_tokens(self.distribution(outputs), 0.5)
            return torch.as_tensor(-median, device=outputs.device)
        if self.spec.kind == "quantile":
            log_median = log_quantiles(outputs.double())[:, self.spec.quantiles.index(0.5)]
            return -log_median.exp()
        k = torch.arange(self.spec.buckets, dtype=outputs.dtype, device=outputs.device)
        return -(outputs.softmax(dim=-1) * k).sum(dim=-1)

    def distribution(self, outputs: torch.Tensor) -> np.ndarray:
        """Probabilities over the length bins, [n, NUM_BINS] float64 (distributional
        heads only)."""
        if self.spec.kind == "nll":
            return outputs.detach().double().softmax(dim=-1).cpu().numpy()
        if self.spec.kind == "quantile":
            log_q = log_quantiles(outputs.detach().double()).cpu().numpy()
            return quantiles_to_distribution(log_q, self.spec.quantiles)
        raise PredictorError(f"a {self.spec.describe()} model predicts no distribution")

    def init_head(self, head: nn.Linear, lengths: np.ndarray) -> None:
        """Start a distributional head at the training lengths' marginal distribution (its
        bias), so that the untrained model is the prompt-blind baseline. No-op otherwise."""
        import torch

        if self.spec.kind == "nll":
            bias = np.log(from_counts(histogram(lengths), MARGINAL_PSEUDO_COUNT))
        elif self.spec.kind == "quantile":
            log_tokens = np.log(np.maximum(np.asarray(lengths, dtype=np.float64), 1.0))
            q = np.quantile(log_tokens, self.spec.quantiles)
            steps = np.maximum(np.diff(q), 1e-3)
            bias = np.concatenate([q[:1], np.log(np.expm1(steps))])  # softplus^-1
        else:
            return
        with torch.no_grad():
            head.bias.copy_(torch.as_tensor(bias, dtype=head.bias.dtype))
