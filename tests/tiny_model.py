"""A tiny random Llama model with a freshly trained tokenizer and a chat template, built in-process:
real transformers/TRL code paths in milliseconds per step.  head_dim 64 so vLLM can run it too."""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_model(
    folder: Path, corpus: list[str] | None = None, max_positions: int = 512, vocab_size: int = 512
) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from internflow.benchmarks import BENCHMARKS

    if corpus is None:
        corpus = [b.prompt(item) + " " + item.answer for b in BENCHMARKS.values() for item in b.load("train")[:300]]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    from tokenizers import decoders

    tokenizer.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=max_positions,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def as_base_model(source: Path, target: Path, *, chat_template: bool = False) -> Path:
    """A copy of the tiny model as a base model ships: no pad token and (unless asked) no chat template."""
    import json
    import shutil

    shutil.copytree(source, target)
    if not chat_template:
        (target / "chat_template.jinja").unlink()
    tokenizer_config = json.loads((target / "tokenizer_config.json").read_text())
    tokenizer_config.pop("pad_token", None)
    if not chat_template:
        tokenizer_config.pop("chat_template", None)
    (target / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    config = json.loads((target / "config.json").read_text())
    config.pop("pad_token_id", None)
    (target / "config.json").write_text(json.dumps(config))
    return target
