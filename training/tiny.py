"""Tiny stand-ins for tests and `bench/gpu_check.py`: a byte-level BPE tokenizer trained on a few texts and a
Qwen2-architecture model with random weights, both built locally (no hub). Heavy imports stay inside functions."""
from __future__ import annotations

from typing import Iterable

END = "<|endoftext|>"


def byte_level_tokenizer(texts: Iterable[str], *, vocab_size: int = 512):
    """A GPT-2/Qwen-style byte-level BPE (lossless decode, so stop strings are found in the decoded text).
    `<think>`/`</think>` stay several tokens unless the caller adds them."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    # " true" / " false" are whole tokens in real vocabularies: make them frequent enough to be merged.
    tok.train_from_iterator([*texts, *([" true false"] * 200)], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=END, pad_token=END)


def tiny_qwen(tokenizer, *, hidden_size: int = 32, layers: int = 2, heads: int = 4, kv_heads: int = 2,
              max_positions: int = 2048, seed: int = 0, model_class=None, vocab_size: int | None = None):
    """A Qwen2ForCausalLM (or `model_class`, a subclass) with random weights sized to the tokenizer (or to a larger,
    padded `vocab_size`, as Qwen's own embeddings are)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab_size or len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=None, tie_word_embeddings=False,
    )
    return (model_class or Qwen2ForCausalLM)(config).eval()
