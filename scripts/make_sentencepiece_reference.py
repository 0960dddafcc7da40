#!/usr/bin/env python3
"""Trains a tiny SentencePiece BPE model (Llama-style settings: identity
normalization, no whitespace folding, dummy prefix, digits split, byte
fallback) and writes reference encodings made by the sentencepiece library.

    $VENV/bin/python scripts/make_sentencepiece_reference.py
    ($VENV: a virtualenv made as scripts/requirements-reference.txt says.)

Outputs (both small, committed):
    tests/data/sentencepiece_bpe/tokenizer.model
    tests/data/tokenizer_reference_sentencepiece.json

No Llama 2 tokenizer is available offline; this model exercises the same code
path (scores, "▁", <0xNN> byte fallback) with a vocabulary of a few hundred.
"""

import io
import json
import os

import sentencepiece as spm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = os.path.join(ROOT, "tests", "data", "sentencepiece_bpe")
OUT = os.path.join(ROOT, "tests", "data", "tokenizer_reference_sentencepiece.json")

TRAIN_TEXT = """\
The quick brown fox jumps over the lazy dog. The dog sleeps in the sun.
A tokenizer splits text into pieces, and the model reads the pieces as numbers.
Servers stream tokens to clients as soon as they are ready; the first token matters.
In the beginning there was text, and the text was split into words and subwords.
She sells sea shells by the sea shore, and the shells she sells are sea shells.
It's a truth universally acknowledged that they're here, we've seen it, I'm sure.
Numbers like 12, 345 and 6789 are split into single digits: 1 2 3 4 5 6 7 8 9 0.
Le café est très bon, et la crème brûlée aussi. Où est la bibliothèque ?
Der Bäcker backt Brötchen; die Straße ist naß und kühl. Schöne Grüße!
El niño comió una manzana en la mañana. ¿Dónde está el baño?
def main(argv):
    for i in range(10):
        print(i * i)
    return 0
int add(int a, int b) { return a + b; }
    indented lines keep their    spaces   and tabs\tlike this.
Hello world! Hello there! Hello again, world of tokens and pieces.
"""

CASES = [
    "",
    "Hello world",
    " Hello world",
    "Hello  world   with    spaces",
    "trailing spaces   ",
    "   ",
    "The quick brown fox jumps over the lazy dog.",
    "tokens and pieces, pieces and tokens",
    "It's they're we've I'm",
    "café crème brûlée naß Grüße",
    "numbers 1234567890 and 3.14159",
    "def f(x):\n    return x * 2\n",
    "tabs\tand\nnewlines\r\n",
    "unseen letters: qzxjvk QZXJVK",
    "日本語テキスト",
    "emoji 😀 and ZWJ 👨‍👩‍👧",
    "mixed 中文 and English and ελληνικά",
    "\u00a0nbsp and \u3000 ideographic space",
    "<s> and </s> stay text here",
    "Hello world! " * 20,
]


def main():
    os.makedirs(MODEL_DIR, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TRAIN_TEXT.splitlines() * 4),
        model_writer=model,
        model_type="bpe",
        vocab_size=420,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        character_coverage=0.995,
        bos_id=1,
        eos_id=2,
        unk_id=0,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    path = os.path.join(MODEL_DIR, "tokenizer.model")
    with open(path, "wb") as f:
        f.write(model.getvalue())

    sp = spm.SentencePieceProcessor(model_file=path)
    cases = []
    for text in CASES:
        ids = sp.encode(text)
        cases.append({"text": text, "ids": ids, "decoded": sp.decode(ids)})
    out = {
        "model": "tests/data/sentencepiece_bpe/tokenizer.model",
        "reference": "sentencepiece " + spm.__version__ + " SentencePieceProcessor.encode "
        "(no BOS/EOS); see scripts/make_sentencepiece_reference.py",
        "vocab_size": sp.get_piece_size(),
        "bos_id": sp.bos_id(),
        "eos_id": sp.eos_id(),
        "unk_id": sp.unk_id(),
        "cases": cases,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {path} ({len(model.getvalue())} bytes) and {OUT}: {len(cases)} cases")


if __name__ == "__main__":
    main()
