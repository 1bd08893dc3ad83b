"""Random-weight llama-architecture GGUF models for llama-server (scripts/engine.sh).

The weights are noise, so the text is gibberish, but the engine does all of
its real work: tokenizer, chat template, prefill, decode, KV and prompt cache.
Each model takes a real tokenizer from the vocabulary-only GGUF files that
llama.cpp ships for its own tokenizer tests (models/ggml-vocab-*.gguf in the
sources), so prompts are tokenized as a served Llama 2 or Llama 3 would
tokenize them.

Usage: engine-models.py VOCAB_DIR OUT_DIR

Seeded: the same numpy and gguf versions write the same bytes on every
machine.
"""

import sys
from pathlib import Path

import numpy as np
import gguf

# A ChatML template (the fallback llama.cpp itself uses), written into each
# model so that chat requests get role markers from the model file rather
# than from the server's defaults.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# name: (vocabulary, layers, width, feed-forward width, heads, seed)
MODELS = {
    # 2 x 128 with Llama 2's SentencePiece vocabulary (32,000 pieces, byte
    # fallback): about 8 MB, the fast engine most tests use.
    "tiny-spm": ("llama-spm", 2, 128, 256, 4, 1),
    # 8 x 512, same vocabulary: about 90 MB and several times slower per
    # token, the "bigger model" candidate.
    "small-spm": ("llama-spm", 8, 512, 1536, 8, 2),
    # 2 x 64 with Llama 3's byte-level BPE vocabulary (128,256 tokens,
    # 280,147 merges): the BPE tokenizer checked against the engine.
    "tiny-bpe": ("llama-bpe", 2, 64, 128, 4, 3),
}

CONTEXT = 8192


def copy_tokenizer(reader: gguf.GGUFReader, w: gguf.GGUFWriter) -> int:
    """Copies every tokenizer.* key of a vocabulary file; returns the vocabulary size."""
    n_vocab = 0
    for name, field in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            values = field.contents()
            w.add_array(name, values)  # element type from the values: str, int32, float32
            if name == "tokenizer.ggml.tokens":
                n_vocab = len(values)
        else:
            w.add_key_value(name, field.contents(), vtype)
    if n_vocab == 0:
        raise SystemExit(f"{reader.path}: no tokenizer.ggml.tokens")
    return n_vocab


def write_model(vocab_dir: Path, out_dir: Path, name: str) -> None:
    vocab, n_layer, n_embd, n_ff, n_head, seed = MODELS[name]
    reader = gguf.GGUFReader(vocab_dir / f"ggml-vocab-{vocab}.gguf")
    path = out_dir / f"{name}.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(f"reprise-{name}")
    w.add_context_length(CONTEXT)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    n_vocab = copy_tokenizer(reader, w)
    w.add_vocab_size(n_vocab)
    w.add_chat_template(CHAT_TEMPLATE)

    rng = np.random.default_rng(seed)

    def matrix(rows: int, cols: int) -> np.ndarray:
        # Small normal weights keep activations finite through the layers.
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)

    def norm(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    w.add_tensor("token_embd.weight", matrix(n_vocab, n_embd))
    w.add_tensor("output_norm.weight", norm(n_embd))
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", norm(n_embd))
        for t in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(f"blk.{i}.{t}.weight", matrix(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", norm(n_embd))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", matrix(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_up.weight", matrix(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_down.weight", matrix(n_embd, n_ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: engine-models.py VOCAB_DIR OUT_DIR")
    vocab_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in MODELS:
        write_model(vocab_dir, out_dir, name)


if __name__ == "__main__":
    main()
