#!/usr/bin/env python3
"""Writes tests/data/tokenizer_reference_smollm2.json: token ids of varied strings
under the default model's tokenizer, computed by Hugging Face `tokenizers`.

Run with the reference venv:
    $VENV/bin/python scripts/make_tokenizer_reference.py
    ($VENV: a virtualenv made as scripts/requirements-reference.txt says.)

Which tokenizer is the reference: SmolLM2's own tokenizer.json (on the Hub) is a
byte-level BPE whose pre-tokenizer is Sequence[Digits(individual_digits=True),
ByteLevel(add_prefix_space=False)]; llama.cpp calls that family "smollm". The
GGUF stores the vocabulary and merges but only the name "smollm" for the
pre-tokenizer. `transformers` can load the tokenizer from the GGUF, but its GGUF
converter builds a plain ByteLevel pre-tokenizer and drops the Digits step, so it
differs from the real SmolLM2 tokenizer wherever digits follow spaces. So the
reference is built independently with `tokenizers` from the GGUF's vocabulary
and merges plus SmolLM2's pre-tokenizer, and transformers' GGUF tokenizer is run
too: its ids are stored beside ours and every case where it disagrees is listed
(see "transformers_gguf_mismatches").
"""

import json
import os
import sys

import numpy as np
from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = os.path.join(ROOT, "models")
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = os.path.join(ROOT, "tests", "data", "tokenizer_reference_smollm2.json")

CASES = [
    "",
    "Hello world",
    "Hello, world! How are you today?",
    " leading space",
    "trailing space ",
    "multiple   spaces    between",
    "tabs\tand\ttabs\t\t",
    "line one\nline two\n\nline four\r\nwindows",
    "   \n\t  mixed whitespace \n ",
    "It's, they're, we've, I'm, you'll, he'd, don't, can't",
    "IT'S SHOUTING DON'T",
    "café naïve résumé jalapeño Ångström",
    "Ünïcödé façade coöperate",
    "日本語のテキストです。中文文本。한국어 텍스트",
    "Привет, мир! Γειά σου κόσμε. مرحبا بالعالم",
    "emoji: 😀😃😄 👍🏽 🎉",
    "family: 👨‍👩‍👧‍👦 and flag: 🇫🇷 and heart: ❤️",
    "1234567890",
    "The year 2024 had 365 days and 8760 hours.",
    "pi = 3.14159265358979, e = 2.71828",
    "a  1 b   22 c\t333",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < 10; ++i) { sum += a[i] * b[i]; }",
    "<html><body class=\"main\">Hello &amp; bye</body></html>",
    "https://example.com/path?query=1&other=two#frag",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "text<|im_end|>more<|endoftext|>",
    "<|im_start|><|im_start|>",
    "not special: <|im_star|> <| im_end |>",
    "!!!??? ... --- ***",
    "Mixed: English, français, Deutsch, 日本, 😀 and numbers 42.",
    "    indented code\n        more indented",
    "\u00a0non-breaking\u00a0spaces\u3000ideographic",
    "zero\u200bwidth\u200cjoiner\u200dtest",
    "ALLCAPS lowercase MiXeDcAsE",
    "$100 & 50% off @user #hashtag",
    "\u0085next line char",
    "x" * 300,
    "The quick brown fox jumps over the lazy dog. " * 20,
]


def random_cases(n=25, seed=7):
    """Random mixes of scripts, digits, whitespace and punctuation."""
    import random

    rng = random.Random(seed)
    ranges = [(0x20, 0x7E), (0x20, 0x7E), (0x30, 0x39), (0x09, 0x0D), (0xA0, 0x24F),
              (0x300, 0x36F), (0x400, 0x45F), (0x4E00, 0x4E80), (0x1F300, 0x1F64F),
              (0x2000, 0x200F), (0x3000, 0x3003)]
    out = []
    for _ in range(n):
        chars = []
        for _ in range(rng.randint(1, 40)):
            lo, hi = rng.choice(ranges)
            chars.append(chr(rng.randint(lo, hi)))
        out.append("".join(chars))
    return out


def read_gguf(path):
    reader = GGUFReader(path)

    def field(name):
        return reader.fields[name]

    def strings(name):
        f = field(name)
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    def scalar(name):
        f = field(name)
        return f.parts[f.data[0]].tolist()[0]

    tokens = strings("tokenizer.ggml.tokens")
    merges = strings("tokenizer.ggml.merges")
    f = field("tokenizer.ggml.token_type")
    types = [int(f.parts[i][0]) for i in f.data]
    return {
        "tokens": tokens,
        "merges": merges,
        "types": types,
        "pre": bytes(field("tokenizer.ggml.pre").parts[field("tokenizer.ggml.pre").data[0]]).decode(),
        "bos": scalar("tokenizer.ggml.bos_token_id"),
        "eos": scalar("tokenizer.ggml.eos_token_id"),
        "add_bos": bool(scalar("tokenizer.ggml.add_bos_token")),
    }


def build_reference(g):
    vocab = {t: i for i, t in enumerate(g["tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in g["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    specials = [
        AddedToken(g["tokens"][i], special=True, normalized=False)
        for i, t in enumerate(g["types"])
        if t == 3  # control
    ]
    tok.add_special_tokens(specials)
    return tok


def main():
    g = read_gguf(os.path.join(MODEL_DIR, GGUF_NAME))
    assert g["pre"] == "smollm", g["pre"]
    ref = build_reference(g)

    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(MODEL_DIR, gguf_file=GGUF_NAME)
    hf_bos = hf("Hello world")["input_ids"][0] == g["bos"]

    cases = []
    mismatches = []
    for text in CASES + random_cases():
        ids = ref.encode(text, add_special_tokens=False).ids
        ref.encode_special_tokens = True
        ids_plain = ref.encode(text, add_special_tokens=False).ids
        ref.encode_special_tokens = False
        assert ref.decode(ids, skip_special_tokens=False) == text, text
        hf_ids = hf(text, add_special_tokens=True)["input_ids"]
        if hf_ids != ids:
            mismatches.append(text)
        cases.append(
            {
                "text": text,
                "ids": ids,  # parse_special = true, add_special = false
                "ids_no_parse_special": ids_plain,
                "transformers_gguf_ids": hf_ids,
            }
        )
    out = {
        "model": GGUF_NAME,
        "reference": "tokenizers BPE from the GGUF vocab/merges with SmolLM2's "
        "Digits(individual)+ByteLevel pre-tokenizer; see scripts/make_tokenizer_reference.py",
        "gguf_add_bos": g["add_bos"],
        "transformers_adds_bos": bool(hf_bos),
        "transformers_gguf_mismatches": mismatches,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} cases; transformers-from-GGUF differs on "
          f"{len(mismatches)}: {mismatches}; transformers adds BOS: {hf_bos}", file=sys.stderr)


if __name__ == "__main__":
    main()
