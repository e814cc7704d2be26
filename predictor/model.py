"""The ranker: a backbone, one pooled vector per prompt, and a linear head.

Decoders (OPT) pool the hidden state of the last non-pad token, as the paper's
sequence classifier does; encoders (MiniLM) pool the mean over the prompt's tokens.
The head has one output (a score), one per length bucket (classification, and the
distributional nll head over the lengthdist bins), or one per quantile.
"""

from __future__ import annotations

import torch
from torch import nn


class LengthRanker(nn.Module):
    def __init__(self, backbone: nn.Module, pooling: str, num_outputs: int = 1):
        super().__init__()
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', got {pooling!r}")
        self.backbone = backbone
        self.pooling = pooling
        config = backbone.config
        # OPT's decoder projects its output to word_embed_proj_dim (512 in opt-350m).
        width = getattr(config, "word_embed_proj_dim", None) or config.hidden_size
        self.head = nn.Linear(width, num_outputs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask: [batch, tokens], right-padded -> [batch, num_outputs]."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        hidden = hidden.last_hidden_state
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
        if self.pooling == "mean":
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        else:
            last = attention_mask.sum(1).long() - 1
            pooled = hidden[torch.arange(len(last), device=hidden.device), last]
        return self.head(pooled)


def collate(
    ids: list[list[int]], pad_id: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad a batch of token id lists to its longest -> (input_ids, attention_mask)."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        attention_mask[i, : len(x)] = 1
    return input_ids.to(device), attention_mask.to(device)


def forward_grouped(
    model: LengthRanker,
    ids: list[list[int]],
    pad_id: int,
    device: torch.device | str = "cpu",
    max_tokens: int = 4096,
) -> torch.Tensor:
    """model's outputs for ids, in their order, computed in length-sorted sub-batches of at
    most max_tokens (padded) each. The outputs, and the gradients through them, are those
    of one padded batch; prompts of mixed lengths just waste far less compute on padding."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    groups: list[list[int]] = [[]]
    for i in order:  # ascending, so len(ids[i]) is the group's padded width
        if groups[-1] and (len(groups[-1]) + 1) * len(ids[i]) > max_tokens:
            groups.append([])
        groups[-1].append(i)
    out = torch.cat([model(*collate([ids[i] for i in g], pad_id, device)) for g in groups])
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    return out[inverse.to(out.device)]
