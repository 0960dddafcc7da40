#!/usr/bin/env python3
"""Writes tests/data/tokenizer_json_nfc/tokenizer.json, a small byte-level BPE
tokenizer shaped as Qwen2's (its Split regex, ByteLevel without regex, the NFC
normalizer, <|im_start|>-style added tokens), and
tests/data/tokenizer_reference_nfc.json: the token ids Hugging Face `tokenizers`
gives varied texts under it, many of them not in NFC (decomposed accents,
Hangul jamo, compatibility ideographs), so that the test holds cohost's
normalizer to the real one.

Run with the reference venv (scripts/requirements-reference.txt):
    $VENV/bin/python scripts/make_nfc_tokenizer_reference.py
"""

import json
import os
import unicodedata

import tokenizers
from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
TOKENIZER = os.path.join(DATA, "tokenizer_json_nfc", "tokenizer.json")
OUT = os.path.join(DATA, "tokenizer_reference_nfc.json")

QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
    r"\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Words whose NFC bytes merge into one token, so that NFC and NFD spell
# different tokens (and an unnormalized encoder would differ).
WORDS = ["café", "é", "Å", "한", "ḍ̇", "豈", "hello", " world", " naïve"]

CASES = [
    "café",
    "cafe\u0301",                      # e + combining acute
    "A\u030a and \u212b",              # A + ring, and the Angstrom sign: both Å
    "\u1112\u1161\u11ab",              # Hangul jamo: 한
    "\uf900 is a compatibility ideograph",  # NFC maps it to U+8C48
    "\u1e0b\u0323",                    # reordered and recomposed: ḍ̇
    "o\u0308\u0301 stacked marks",
    "\ufb01 ligature stays (NFKC would not)",
    "e<|im_end|>\u0301 split at an added token first",
    "<|im_start|>user\nna\u0131\u0308ve cafe\u0301<|im_end|>",
    "hello world, already NFC: naïve café 한국어",
    "",
]


def byte_alphabet():
    """GPT-2's byte -> code point table."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) +
                 list(range(ord("®"), ord("ÿ") + 1)))
    codes = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(printable, codes)}


def main():
    alphabet = byte_alphabet()
    vocab = {s: i for i, s in enumerate(SPECIALS)}
    for b in range(256):
        vocab[alphabet[b]] = len(vocab)
    merges = []
    for word in WORDS:
        pieces = [alphabet[b] for b in unicodedata.normalize("NFC", word).encode()]
        while len(pieces) > 1:
            merged = pieces[0] + pieces[1]
            if merged not in vocab:
                vocab[merged] = len(vocab)
                merges.append([pieces[0], pieces[1]])
            pieces = [merged] + pieces[2:]
    spec = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": i, "content": s, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}
                         for i, s in enumerate(SPECIALS)],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_REGEX}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
             "use_regex": False}]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                    "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }
    os.makedirs(os.path.dirname(TOKENIZER), exist_ok=True)
    with open(TOKENIZER, "w", encoding="utf-8") as f:
        json.dump(spec, f, ensure_ascii=False, indent=1)
        f.write("\n")

    tokenizer = Tokenizer.from_file(TOKENIZER)
    cases = []
    changed = 0
    for text in CASES:
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        changed += unicodedata.normalize("NFC", text) != text
        cases.append({"text": text, "ids": ids})
    assert changed >= 6, "most cases must be text that NFC changes"
    nfc, nfd = (tokenizer.encode(t, add_special_tokens=False).ids for t in ("café", "cafe\u0301"))
    assert nfc == nfd and len(nfc) == 1, (nfc, nfd)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write('{"generator": "scripts/make_nfc_tokenizer_reference.py",\n')
        f.write(f' "tokenizers_version": "{tokenizers.__version__}",\n "cases": [\n')
        f.write(",\n".join("  " + json.dumps(c, ensure_ascii=True) for c in cases))
        f.write("\n ]}\n")
    print(f"wrote {TOKENIZER} ({len(vocab)} tokens, {len(merges)} merges) and {OUT} "
          f"({len(cases)} cases, {changed} changed by NFC)")


if __name__ == "__main__":
    main()
