#!/usr/bin/env python3
"""Renders the chat templates in tests/data/chat_templates with Jinja2, as
transformers' apply_chat_template does (trim_blocks, lstrip_blocks), for the
conversations below, into tests/data/chat_templates/reference.json, which
tests/runtime/tokenizer/chat_template_test.cc reads.

  python3 -m pip install jinja2 && python3 scripts/make_chat_template_reference.py

deepseek_r1_distill.jinja is the chat_template of DeepSeek-R1-Distill-Qwen's
tokenizer_config.json (MIT license), the revision whose generation prompt opens
the think block; "deepseek_r1_distill_old" is the earlier one, which did not.
bos_token is empty: cohost's tokenizer adds BOS itself for these models.
"""
import json
import pathlib

import jinja2

HERE = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "chat_templates"

CONVERSATIONS = [
    ([{"role": "user", "content": "Hi"}], True),
    ([{"role": "system", "content": "Be brief."},
      {"role": "user", "content": "2+2?"},
      {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"},
      {"role": "user", "content": "and 3+3?"}], True),
    ([{"role": "system", "content": "A"}, {"role": "system", "content": "B"},
      {"role": "user", "content": "x"}], True),
    ([{"role": "user", "content": "q"}, {"role": "tool", "content": "r1"},
      {"role": "tool", "content": "r2"}, {"role": "assistant", "content": "done"},
      {"role": "user", "content": "again"}], True),
    ([{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}], True),
    ([{"role": "user", "content": "Hi"}, {"role": "developer", "content": "ignored"},
      {"role": "assistant", "content": "a</think>b</think>Hello"}], False),
]


def main():
    source = (HERE / "deepseek_r1_distill.jinja").read_text()
    templates = {
        "deepseek_r1_distill": source,
        "deepseek_r1_distill_old": source.replace("<｜Assistant｜><think>\\n", "<｜Assistant｜>"),
    }
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    cases = []
    for name, text in templates.items():
        template = env.from_string(text)
        for messages, gen in CONVERSATIONS:
            cases.append({
                "template": name,
                "messages": messages,
                "add_generation_prompt": gen,
                "text": template.render(messages=messages, add_generation_prompt=gen,
                                        bos_token=""),
            })
    out = {"templates": templates, "cases": cases}
    (HERE / "reference.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
