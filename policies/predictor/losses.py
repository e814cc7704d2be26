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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from policies.predictor.errors import PredictorError

if TYPE_CHECKING:
    import torch

LOSSES = ("listmle", "pairwise", "mse", "classify")


@dataclass(frozen=True)
class LossSpec:
    """A parsed `--loss` spec."""

    kind: str
    buckets: int = 0
    width: float = 0.0
    percentile: bool = False
    margin: float = 1.0
    edges: tuple[float, ...] = field(default=())  # classify: upper bucket bounds, fitted

    @property
    def num_outputs(self) -> int:
        return self.buckets if self.kind == "classify" else 1

    def describe(self) -> str:
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
        )


def parse_loss(spec: str) -> LossSpec:
    """`listmle`, `pairwise[:margin=M]`, `mse` or `classify:buckets=N[,width=W|,percentile]`."""
    kind, _, rest = spec.strip().partition(":")
    if kind not in LOSSES:
        raise PredictorError(
            f"unknown loss {kind!r} in {spec!r}: choose one of {', '.join(LOSSES)}"
        )
    params: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        params[key] = value if eq else "true"
    allowed = {"classify": {"buckets", "width", "percentile"}, "pairwise": {"margin"}}
    unknown = set(params) - allowed.get(kind, set())
    if unknown:
        raise PredictorError(f"loss {spec!r}: unknown parameter(s) {', '.join(sorted(unknown))}")
    try:
        if kind == "pairwise":
            return LossSpec(kind, margin=float(params.get("margin", 1.0)))
        if kind != "classify":
            return LossSpec(kind)
        if "buckets" not in params:
            raise PredictorError(f"loss {spec!r}: classify needs buckets=N")
        buckets, width = int(params["buckets"]), float(params.get("width", 0))
    except ValueError:
        raise PredictorError(f"loss {spec!r}: parameters must be numbers") from None
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
        target = torch.as_tensor(bucket_of(self.spec, lengths), device=device)
        return F.cross_entropy(outputs, target)

    def score(self, outputs: torch.Tensor) -> torch.Tensor:
        """Higher = predicted shorter."""
        import torch

        if self.spec.kind in ("listmle", "pairwise"):
            return outputs[:, 0]
        if self.spec.kind == "mse":
            return -outputs[:, 0]
        k = torch.arange(self.spec.buckets, dtype=outputs.dtype, device=outputs.device)
        return -(outputs.softmax(dim=-1) * k).sum(dim=-1)
