"""Tokenizers by name, all offline: cl100k, llama3, and a user's tokenizer.json."""

from __future__ import annotations

import numpy as np
import pytest

from traces.errors import TraceError
from traces.tokenize import get_tokenizer

TEXTS = ["hello world", "The quick brown fox jumps over the lazy dog.", "", "<|endoftext|> x"]


def test_cl100k_counts_offline_and_treats_special_text_as_ordinary():
    counter = get_tokenizer("cl100k")
    assert counter.name == "cl100k_base"
    np.testing.assert_array_equal(counter.count(TEXTS), [2, 10, 0, 8])


def test_llama3_is_metas_vocabulary():
    quicktok = pytest.importorskip("quicktok")
    enc = quicktok.get_encoding("llama3")
    assert enc.n_vocab == 128_256
    assert enc.encode_single_token("<|begin_of_text|>") == 128_000
    assert enc.encode_single_token("<|eot_id|>") == 128_009
    # Llama-3's published ids for this sentence
    ids = enc.encode("The quick brown fox jumps over the lazy dog.")
    assert ids == [791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13]
    text = "Grüße, 世界! naïve café 🚀 \n\t  code(x) {return 42;}"
    assert enc.decode(enc.encode(text)) == text


def test_llama3_counts_are_close_to_cl100k_on_english():
    # Llama-3's first 100k tokens are cl100k's; its 28k more mostly serve other languages.
    pytest.importorskip("quicktok")
    english = [t * 20 for t in TEXTS if t]
    llama = get_tokenizer("llama3")
    assert llama.name == "llama3"
    np.testing.assert_array_equal(llama.count(english), get_tokenizer("cl100k").count(english))
    other = ["Grüße, 世界! Привет, как дела? こんにちは"]
    assert llama.count(other)[0] <= get_tokenizer("cl100k").count(other)[0]


def test_tokenizer_json_through_tokenizers(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers

    tok = tokenizers.Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    counter = get_tokenizer(str(path))
    assert counter.name.startswith("tokenizer.json sha256:")
    np.testing.assert_array_equal(counter.count(["hello there world", "", "hello"]), [3, 0, 1])
    assert [e.tolist() for e in counter.encode_batch(["hello there", ""])] == [[1, 0], []]


@pytest.mark.parametrize("name", ["cl100k", "llama3"])
def test_encoded_ids_are_as_many_as_the_count(name):
    if name == "llama3":
        pytest.importorskip("quicktok")
    counter = get_tokenizer(name)
    ids = counter.encode_batch(TEXTS)
    assert [len(i) for i in ids] == counter.count_batch(TEXTS).tolist()
    assert all(i.dtype == np.int64 for i in ids)
    assert ids[0].tolist() == [15339, 1917]  # "hello world": the same ids in both vocabularies


@pytest.mark.parametrize(
    ("name", "message"),
    [("gpt2", "unknown tokenizer 'gpt2'"), ("missing/tokenizer.json", "no such file")],
)
def test_unknown_or_missing_tokenizer(name, message):
    with pytest.raises(TraceError, match=f"--tokenizer.*{message}"):
        get_tokenizer(name)


def test_bad_tokenizer_json(tmp_path):
    pytest.importorskip("tokenizers")
    path = tmp_path / "tokenizer.json"
    path.write_text("{}")
    with pytest.raises(TraceError, match="not a tokenizer.json"):
        get_tokenizer(str(path))
