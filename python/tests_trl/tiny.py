"""A tiny GRPO setup built in code (nothing fetched from a hub): a 2-layer Llama of hidden size 32, a
character-level tokenizer, a prompt data set with a per-row target character, and a reward function."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

import torch
from datasets import Dataset
from tokenizers import Tokenizer, decoders, models
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from trl import GRPOConfig

ALPHABET = "abcdefgh"
SPECIAL = ["<pad>", "<eos>"]


def tokenizer() -> PreTrainedTokenizerFast:
    vocab = {t: i for i, t in enumerate(SPECIAL + list(ALPHABET) + list(" ?:"))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", padding_side="left")


def model(tok: PreTrainedTokenizerFast, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=64, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id, bos_token_id=None, tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


def dataset(n: int = 12, features: bool = True) -> Dataset:
    """Row i asks for the letter ``ALPHABET[i % 8]``; the features say how often two reference models
    produce it (made up, but different per row)."""
    rows = {
        "prompt": [f"{ALPHABET[i % 8]}{ALPHABET[(3 * i) % 8]}?" for i in range(n)],
        "target": [ALPHABET[i % 8] for i in range(n)],
        "row": list(range(n)),
    }
    if features:
        rows["weak_pass_rate"] = [((i * 5) % 8) / 8 for i in range(n)]
        rows["strong_pass_rate"] = [min(1.0, ((i * 5) % 8) / 8 + 0.25) for i in range(n)]
    return Dataset.from_dict(rows)


def letter_reward(prompts, completions, target, **kwargs):
    """1 when the completion holds the row's target letter, else 0."""
    return [1.0 if t in c else 0.0 for c, t in zip(completions, target)]


def grpo_args(output_dir: str, **overrides) -> GRPOConfig:
    args = dict(
        output_dir=output_dir, use_cpu=True, report_to="none", seed=3, learning_rate=1e-2,
        per_device_train_batch_size=8, num_generations=4, max_completion_length=3, max_steps=6,
        logging_steps=1, save_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
        temperature=1.0, bf16=False, fp16=False,
    )
    args.update(overrides)
    return GRPOConfig(**args)
