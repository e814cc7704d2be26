"""Tokenizers: the prompt template, and the byte-level BPE trained for an OPT built from
its config (OPT's own GPT-2 tokenizer cannot be had offline, so a model trained from
scratch gets a vocabulary of its own, learned on the training prompts and saved with it)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from predictor.backbone import offline
from predictor.errors import PredictorError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"


def format_prompt(template: str, prompt: str) -> str:
    return template.replace("{prompt}", prompt)


def train_bpe_tokenizer(
    texts: Iterable[str], vocab_size: int, max_prompt_tokens: int
) -> PreTrainedTokenizerBase:
    """A byte-level BPE (GPT-2 style) learned on texts; each input starts with </s> as
    OPT's tokenizer does."""
    offline()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{EOS} $A", special_tokens=[(EOS, tok.token_to_id(EOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=EOS,
        bos_token=EOS,
        unk_token=UNK,
        model_max_length=max_prompt_tokens,
    )


def load_tokenizer(model_dir: Path) -> PreTrainedTokenizerBase:
    offline()
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise PredictorError(
            f"{model_dir}: cannot load the tokenizer ({str(e).splitlines()[0]})"
        ) from None


def encode(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_prompt_tokens: int
) -> list[list[int]]:
    """Token ids per text, cut to max_prompt_tokens (the start of the prompt is kept)."""
    out = tokenizer(texts, truncation=True, max_length=max_prompt_tokens, add_special_tokens=True)
    return out["input_ids"]
