#!/usr/bin/env python3
"""llama.cpp's tokenization, special tokens parsed, on a SentencePiece
vocabulary: a vocab-only GGUF made from tests/data/sentencepiece_bpe's
tokenizer.model with the tokenizer.ggml.* keys llama.cpp's converter writes,
and the ids llama-cpp-python gives for texts that special tokens split (a
chat's turns: llama.cpp prefixes a space to each run after one).

    $VENV/bin/python scripts/make_llamacpp_spm_reference.py
    ($VENV: a virtualenv made as scripts/requirements-reference.txt says.)

Outputs (small, committed; the GGUF holds no tensors):
    tests/data/sentencepiece_bpe/vocab.gguf
    tests/data/llamacpp_spm_reference.json
"""

import json
import os

import gguf
import llama_cpp
import sentencepiece as spm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "tests", "data", "sentencepiece_bpe", "tokenizer.model")
GGUF = os.path.join(ROOT, "tests", "data", "sentencepiece_bpe", "vocab.gguf")
OUT = os.path.join(ROOT, "tests", "data", "llamacpp_spm_reference.json")

TEXTS = [
    "The quick brown fox",
    "<s>The quick brown fox</s><s>A tokenizer splits text",
    "</s><s>[INST] The dog sleeps [/INST]",
    "a</s>b",
    "</s> a leading space",
    "text</s>",
    "</s></s>x",
    "</s>\n",
    "<s>  two spaces",
    "Le café</s>Où est la bibliothèque ?",
    "12345</s>6789",
    "a<unk>b",
]


def write_gguf(sp):
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_unused(i):
            types.append(gguf.TokenType.UNUSED)
        elif sp.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)
    w = gguf.GGUFWriter(GGUF, "llama")
    w.add_name("sentencepiece-vocab")
    w.add_context_length(256)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_feed_forward_length(128)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(32)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    sp = spm.SentencePieceProcessor(model_file=MODEL)
    write_gguf(sp)
    llm = llama_cpp.Llama(model_path=GGUF, vocab_only=True, verbose=False)
    cases = []
    for text in TEXTS:
        for add_bos in (True, False):
            ids = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
            cases.append({"text": text, "add_bos": add_bos, "ids": ids})
    with open(OUT, "w", encoding="utf-8") as f:
        f.write('{"llama_cpp_python": %s, "gguf": %s, "cases": [\n' %
                (json.dumps(llama_cpp.__version__), json.dumps(os.path.basename(GGUF))))
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n]}\n")
    print("wrote %s (%d bytes) and %s (%d cases)" % (GGUF, os.path.getsize(GGUF), OUT, len(cases)))


if __name__ == "__main__":
    main()
