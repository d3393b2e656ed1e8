"""Small saved models with random weights and their own tokenizer: local models, no Hub needed."""

import torch

# the size both saved models share (the tokenizer's 4,096 words)
SIZE = dict(vocab_size=4096, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=256)


def _save_tokenizer(path) -> None:
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, **{f"w{i}": i for i in range(1, 4096)}}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="[UNK]").save_pretrained(path)


def small_local_model(path):
    """A saved Llama (about 13 MB in fp32) with its own word-level tokenizer: no Hub needed."""
    from transformers import LlamaConfig, LlamaForCausalLM

    _save_tokenizer(path)
    cfg = LlamaConfig(**SIZE, num_key_value_heads=4)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path


def small_local_mistral(path, sliding_window: int):
    """A saved Mistral as small as small_local_model, its layers attending through `sliding_window`."""
    from transformers import MistralConfig, MistralForCausalLM

    _save_tokenizer(path)
    cfg = MistralConfig(**SIZE, num_key_value_heads=2, sliding_window=sliding_window)
    torch.manual_seed(0)
    MistralForCausalLM(cfg).save_pretrained(path)
    return path


def tiny_draft_for_default(path, vocab_size: int | None = None, tokenizer: str = "default"):
    """A draft model for the embedded default: one tiny Llama layer with random weights and the
    default's own tokenizer (or, with tokenizer="words", a word-level one of `vocab_size` words:
    the default's vocabulary size with other tokens). Its guesses are noise: low acceptance."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from arena.models.gguf import default_model_dir

    if tokenizer == "default":
        AutoTokenizer.from_pretrained(default_model_dir()).save_pretrained(path)
        vocab_size = vocab_size or len(AutoTokenizer.from_pretrained(path))
    else:
        from tokenizers import Tokenizer, pre_tokenizers
        from tokenizers.models import WordLevel
        from transformers import PreTrainedTokenizerFast

        vocab = {"[UNK]": 0, **{f"w{i}": i for i in range(1, vocab_size)}}
        tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="[UNK]").save_pretrained(path)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                      tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path
