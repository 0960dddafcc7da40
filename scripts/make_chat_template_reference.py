#!/usr/bin/env python3
"""Renders the chat templates in tests/data/chat_templates with Jinja2, as
transformers' apply_chat_template does (trim_blocks, lstrip_blocks), for the
conversations below, into tests/data/chat_templates/reference.json, which
tests/runtime/tokenizer/chat_template_test.cc reads.

  python3 -m pip install jinja2 && python3 scripts/make_chat_template_reference.py

deepseek_r1_distill.jinja is the chat_template of DeepSeek-R1-Distill-Qwen's
tokenizer_config.json (MIT license), the revision whose generation prompt opens
the think block; "deepseek_r1_distill_old" is the earlier one, which did not.
llama3_1_instruct.jinja is Llama 3.1 Instruct's (Llama 3.3's is the same).
qwen3.jinja is Qwen3's (Qwen/Qwen3-0.6B, Apache-2.0), for its think blocks and
tool calling: the conversations in QWEN3_TOOLS carry `tools` as a client sends
them and OpenAI-shaped tool calls whose arguments are parsed from their JSON
text before rendering, as vLLM does (_postprocess_messages), and `tojson` is
transformers' (json.dumps, ensure_ascii off, keys in their order), not Jinja's
own. qwen2_5_instruct.jinja is Qwen2.5-Instruct's (Qwen/Qwen2.5-0.5B-Instruct,
Apache-2.0: its default system message, no think blocks), rendered on the same
conversations, as is qwq_32b.jinja, QwQ-32B's (Apache-2.0; as Unsloth's QwQ
tutorial quotes it, one tag a line here: its `-` markers strip the whitespace
between tags either way): every past answer without its think block, Qwen2.5's
tool layout with an empty default system message, a prompt that opens the
block. So are the "_2507_like" variants made from qwen3.jinja by what
separates Qwen3-Instruct-2507's and Qwen3-Thinking-2507's templates from it
(no enable_thinking; Instruct writes a past turn's think block only where it
has reasoning, not on the final turn; Thinking's generation prompt opens the
block).
mistral_v0_3_instruct.jinja is Mistral-7B-Instruct-v0.3's; the "_like"
variants are made from it by the substitutions that separate the other
versions' templates from it (v0.2: an untrimmed answer; v0.1's later template
and Mixtral's: " [INST] " and " [/INST]" with spaces, the system message on
the first turn; Nemo: "[INST]" without its space and no space before the
answer), not copied from those files.
bos_token is empty: cohost's tokenizer adds BOS itself for these models.
"""
import copy
import json
import pathlib

import jinja2

HERE = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "chat_templates"

# Turns every template here writes (the roles clients may send), and
# whitespace Jinja's trim takes off (Unicode's too).
COMMON = [
    ([{"role": "user", "content": "Hi"}], True),
    ([{"role": "system", "content": " Be brief.\u3000"},
      {"role": "user", "content": "\n2+2?\u00a0"},
      {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"},
      {"role": "user", "content": "and 3+3?"}], True),
    ([{"role": "system", "content": "A"}, {"role": "user", "content": "x"},
      {"role": "assistant", "content": "y"}, {"role": "system", "content": "B"},
      {"role": "user", "content": "z"}], True),
    ([{"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "a</think>b</think>Hello"}], False),
]

# DeepSeek-R1's tool outputs, and a role its template ignores.
DEEPSEEK = [
    ([{"role": "user", "content": "q"}, {"role": "tool", "content": "r1"},
      {"role": "tool", "content": "r2"}, {"role": "assistant", "content": "done"},
      {"role": "user", "content": "again"}], True),
    ([{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}], True),
    ([{"role": "user", "content": "Hi"}, {"role": "developer", "content": "ignored"},
      {"role": "assistant", "content": "Hello"}], False),
]

# Mistral's system message goes with the last user turn (or nowhere).
MISTRAL = [
    ([{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"},
      {"role": "assistant", "content": " A1 "}, {"role": "user", "content": "Q2"}], True),
    ([{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
      {"role": "assistant", "content": "A"}], False),
]


# Tools offered (OpenAI's shape, as a server passes them), and calls made.
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city, now.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "Its name, as \"Paris\" or \"東京\""},
        "unit": {"enum": ["C", "F"], "default": "C"}},
        "required": ["city"]}}}
SEARCH = {"type": "function", "function": {
    "name": "search",
    "parameters": {"properties": {"q": {"type": "string"},
                                  "threshold": {"type": "number", "default": 0.5,
                                                "maximum": 100.0, "minimum": 1e-05}},
                   "type": "object"}}}


def call(name, arguments):
    return {"id": "call_" + name, "type": "function",
            "function": {"name": name, "arguments": arguments}}


QWEN3_TOOLS = [
    # Thinking after the last query: a call's turn keeps its think block.
    ([{"role": "user", "content": "Weather?"},
      {"role": "assistant", "content": "<think>\nWhich city?\n</think>\n\n",
       "tool_calls": [call("get_weather", '{"city": "Paris"}')]},
      {"role": "tool", "content": "18C"}],
     [WEATHER], True),
    # The final turn's answer loses its leading newlines after the block.
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "\nHello"}], [],
     True),
    # A chain of calls: the second turn has reasoning, the first none.
    ([{"role": "user", "content": "Plan a trip."},
      {"role": "assistant", "content": "", "tool_calls": [call("search", '{"q": "trains"}')]},
      {"role": "tool", "content": "none"},
      {"role": "assistant", "content": "<think>b</think>Trying flights.",
       "tool_calls": [call("search", '{"q": "flights", "threshold": 0.25}')]},
      {"role": "tool", "content": "two"}],
     [SEARCH], True),
    # An empty system message still takes its blank line.
    ([{"role": "system", "content": ""}, {"role": "user", "content": "x"}], [WEATHER], True),
    ([{"role": "system", "content": "You are terse."},
      {"role": "user", "content": "Weather in Paris and Rome?"},
      {"role": "assistant", "content": "",
       "tool_calls": [call("get_weather", '{"city": "Paris"}'),
                      call("get_weather", '{"city": "Rome", "unit": "C"}')]},
      {"role": "tool", "content": "18C"}, {"role": "tool", "content": "21C"}],
     [WEATHER, SEARCH], True),
    ([{"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Let me check.",
       "tool_calls": [call("get_weather", '{"city":"Oslo"}')]},
      {"role": "tool", "content": "-3C"},
      {"role": "assistant", "content": "It is cold."},
      {"role": "user", "content": "Thanks <|im_end|>"}],
     [WEATHER], True),
    ([{"role": "user", "content": "q"},
      {"role": "assistant", "content": "", "tool_calls": [call("search", '{"q": "x"}')]},
      {"role": "tool", "content": "r"}],
     [], True),
    # Reasoning given apart (vLLM's reasoning_content): written after the
    # last query, its newlines stripped; the content taken whole, a block in
    # it included; before the last query, or empty on a middle turn, unwritten.
    ([{"role": "user", "content": "Weather?"},
      {"role": "assistant", "content": "\nLooking.", "reasoning_content": "\nWhich city?\n\n",
       "tool_calls": [call("get_weather", '{"city": "Paris"}')]},
      {"role": "tool", "content": "18C"},
      {"role": "assistant", "content": "<think>kept</think>\n\nIt is 18C.",
       "reasoning_content": ""}],
     [WEATHER], False),
    ([{"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hello", "reasoning_content": "a greeting"},
      {"role": "user", "content": "Bye"},
      {"role": "assistant", "content": "x", "reasoning_content": ""},
      {"role": "assistant", "content": "Bye", "reasoning_content": "\n"}],
     [], False),
    # After the last query: reasoning "\n" is reasoning (an empty block); ""
    # is none, and the content, a block in it, is written as it is; a call's
    # newline follows content that is only a newline.
    ([{"role": "user", "content": "Go"},
      {"role": "assistant", "content": "\nA", "reasoning_content": "\n"},
      {"role": "assistant", "content": "\n<think>k</think>B", "reasoning_content": ""},
      {"role": "assistant", "content": "\n", "reasoning_content": "r",
       "tool_calls": [call("search", '{"q": "y"}')]},
      {"role": "tool", "content": "ok"}],
     [SEARCH], True),
]


def main():
    source = (HERE / "deepseek_r1_distill.jinja").read_text()
    templates = {
        "deepseek_r1_distill": (source, COMMON + DEEPSEEK),
        "deepseek_r1_distill_old": (
            source.replace("<｜Assistant｜><think>\\n", "<｜Assistant｜>"), COMMON + DEEPSEEK),
        "llama3_1_instruct": ((HERE / "llama3_1_instruct.jinja").read_text(), COMMON),
    }
    mistral = (HERE / "mistral_v0_3_instruct.jinja").read_text()
    answer = '" " + message["content"]|trim + eos_token'
    templates["mistral_v0_3_instruct"] = (mistral, COMMON + MISTRAL)
    # v0.2's answers are not trimmed; Nemo's spell [INST] without spaces.
    templates["mistral_v0_2_like"] = (
        mistral.replace(answer, '" " + message["content"] + eos_token'), COMMON + MISTRAL)
    # v0.1's later template (and Mixtral's): " [INST] " and " [/INST]",
    # untrimmed answers after a space, the system message on the first turn.
    templates["mistral_v0_1_like"] = (
        mistral.replace('"[INST] "', '" [INST] "').replace('"[/INST]"', '" [/INST]"')
        .replace("loop.last and system_message", "loop.first and system_message")
        .replace(answer, '" " + message["content"] + eos_token'),
        COMMON + MISTRAL)
    templates["mistral_nemo_like"] = (
        mistral.replace('"[INST] "', '"[INST]"').replace(answer, 'message["content"] + eos_token'),
        COMMON + MISTRAL)
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True,
                             extensions=["jinja2.ext.loopcontrols"])
    # transformers' tojson: json.dumps as it is, not Jinja's HTML-safe one.
    env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False,
                                                              indent=indent)
    cases = []
    for name, (text, conversations) in templates.items():
        template = env.from_string(text)
        for messages, gen in conversations:
            cases.append({
                "template": name,
                "messages": messages,
                "add_generation_prompt": gen,
                "text": template.render(messages=messages, add_generation_prompt=gen,
                                        bos_token="", eos_token="</s>"),
            })
    # Qwen's tool-calling templates, each on every case (Qwen2.5's writes no
    # think blocks and reads no reasoning: those cases check that it does not).
    qwen3 = (HERE / "qwen3.jinja").read_text()
    switch = ("\n    {%- if enable_thinking is defined and enable_thinking is false %}"
              "\n        {{- '<think>\\n\\n</think>\\n\\n' }}\n    {%- endif %}")
    prompt = "{{- '<|im_start|>assistant\\n' }}"
    final_rule = "loop.last or (not loop.last and reasoning_content)"
    assert switch in qwen3 and prompt in qwen3 and final_rule in qwen3
    sources = {
        "qwen3": qwen3,
        "qwen2_5_instruct": (HERE / "qwen2_5_instruct.jinja").read_text(),
        "qwq_32b": (HERE / "qwq_32b.jinja").read_text(),
        # The 2507 templates are Qwen3's without the switch: Instruct's
        # writes a past turn's block only where it has reasoning, Thinking's
        # generation prompt opens the block.
        "qwen3_instruct_2507_like": qwen3.replace(switch, "").replace(
            final_rule, "reasoning_content"),
        "qwen3_thinking_2507_like": qwen3.replace(switch, "").replace(
            prompt, "{{- '<|im_start|>assistant\\n<think>\\n' }}"),
    }
    for name, source in sources.items():
        templates[name] = (source, [])
        template = env.from_string(source)
        # The first conversation again with enable_thinking false, which only
        # Qwen3's reads.
        thinking_off = [(COMMON[0][0], [], True, False)]
        for messages, tools, gen, *thinking in ([(m, [], g) for m, g in COMMON] + QWEN3_TOOLS
                                                + thinking_off):
            # vLLM's _postprocess_messages: a call's arguments as an object.
            rendered = copy.deepcopy(messages)
            for m in rendered:
                for c in m.get("tool_calls", []):
                    c["function"]["arguments"] = json.loads(c["function"]["arguments"])
            case = {"template": name, "messages": messages}
            if tools:
                case["tools"] = tools
            case["add_generation_prompt"] = gen
            extra = {}
            if thinking:
                case["enable_thinking"] = extra["enable_thinking"] = thinking[0]
            case["text"] = template.render(messages=rendered, tools=tools or None,
                                           add_generation_prompt=gen, bos_token="",
                                           eos_token="<|im_end|>", **extra)
            cases.append(case)
    out = {"templates": {name: text for name, (text, _) in templates.items()}, "cases": cases}
    (HERE / "reference.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
