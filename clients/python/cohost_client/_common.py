"""What the sync and asyncio clients share: requests, results, channels."""

import dataclasses
import json
from typing import List, Mapping, Optional, Sequence

import grpc

from .v1 import inference_pb2 as pb

FINISH_REASONS = {
    pb.FINISH_REASON_STOP: "stop",
    pb.FINISH_REASON_LENGTH: "length",
    pb.FINISH_REASON_STOP_STRING: "stop_string",
    pb.FINISH_REASON_CANCELLED: "cancelled",
}


@dataclasses.dataclass
class Usage:
    prompt_tokens: int
    cached_prompt_tokens: int
    completion_tokens: int


@dataclasses.dataclass
class Timings:
    queue_time_ms: float
    time_to_first_token_ms: float
    decode_tokens_per_second: float
    e2e_ms: float


@dataclasses.dataclass
class TokenLogprob:
    token_id: int
    logprob: float


@dataclasses.dataclass
class Logprobs:
    """A generated token's log-probability and the most likely alternatives."""
    chosen: TokenLogprob
    top: List[TokenLogprob]


@dataclasses.dataclass
class Chunk:
    """One streamed message: new text and tokens. The last one of a stream
    also has finish_reason, usage and timings."""
    text: str
    token_ids: List[int]
    request_id: str = ""
    finish_reason: Optional[str] = None
    usage: Optional[Usage] = None
    timings: Optional[Timings] = None
    logprobs: List[Logprobs] = dataclasses.field(default_factory=list)  # one per token, if asked
    reasoning: str = ""  # new think-block text, with split_reasoning
    # Calls the answer made, with split_tool_calls, each as OpenAI's API shapes
    # one ({"index", "id", "type": "function", "function": {"name",
    # "arguments"}}), so that an assistant message can carry them back. With
    # stream_tool_calls, their pieces as OpenAI's streamed deltas: a call's
    # first as that, each further one {"index", "function": {"arguments"}}
    # (join_tool_calls joins them).
    tool_calls: List[dict] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ModelInfo:
    name: str
    state: str
    serving: bool
    device: str
    context_length: int
    path: str


def build_request(model, prompt=None, messages=None, tokens=None, max_tokens=None,
                  temperature=None, top_p=None, top_k=None, min_p=None, seed=None,
                  repetition_penalty=None, presence_penalty=None, frequency_penalty=None,
                  stop: Optional[Sequence[str]] = None, ignore_eos=False, request_id="",
                  logprobs: Optional[int] = None, json_object=False,
                  logit_bias: Optional[Mapping[int, float]] = None, json_schema=None,
                  stop_token_ids: Optional[Sequence[int]] = None, priority: int = 0,
                  split_reasoning=False, tools: Optional[Sequence[Mapping]] = None,
                  split_tool_calls=False, tool_choice=None,
                  parallel_tool_calls: Optional[bool] = None, stream_tool_calls=False):
    inputs = [x is not None for x in (prompt, messages, tokens)]
    if sum(inputs) != 1:
        raise ValueError("give exactly one of prompt, messages and tokens")
    r = pb.GenerateRequest(model=model, ignore_eos=ignore_eos, request_id=request_id)
    if prompt is not None:
        r.text = prompt
    elif messages is not None:
        r.chat.messages.extend(chat_message(m) for m in messages)
        r.chat.tools.extend(tool(t) for t in tools or [])
        set_tool_choice(r.chat, tool_choice)
        if parallel_tool_calls is not None:
            r.chat.parallel_tool_calls = parallel_tool_calls
    elif tools or tool_choice is not None or parallel_tool_calls is not None:
        raise ValueError("tools, tool_choice and parallel_tool_calls go with messages")
    else:
        r.tokens.ids.extend(tokens)
    if max_tokens is not None:
        r.max_tokens = max_tokens
    if logprobs is not None:
        r.logprobs = logprobs
    if json_object and json_schema is not None:
        raise ValueError("give json_object or json_schema, not both")
    if json_object:
        r.response_format = pb.RESPONSE_FORMAT_JSON_OBJECT
    if json_schema is not None:
        r.response_format = pb.RESPONSE_FORMAT_JSON_SCHEMA
        r.json_schema = json_schema if isinstance(json_schema, str) else json.dumps(json_schema)
    r.stop_token_ids.extend(stop_token_ids or [])
    r.priority = priority
    r.split_reasoning = split_reasoning
    r.split_tool_calls = split_tool_calls
    r.stream_tool_calls = stream_tool_calls
    for name, value in (("temperature", temperature), ("top_p", top_p), ("top_k", top_k),
                        ("min_p", min_p), ("seed", seed),
                        ("repetition_penalty", repetition_penalty),
                        ("presence_penalty", presence_penalty),
                        ("frequency_penalty", frequency_penalty)):
        if value is not None:
            setattr(r.sampling, name, value)
    for token, bias in (logit_bias or {}).items():
        r.sampling.logit_bias[int(token)] = bias
    r.stop.extend(stop or [])
    return r


def _json_text(value):
    return value if isinstance(value, str) else json.dumps(value)


def chat_message(m):
    """A message as OpenAI's API shapes it: role, content (None for an assistant
    turn of calls only), an assistant's tool_calls ({"function": {"name",
    "arguments"}}, arguments a JSON object or its text) and its
    reasoning_content (or reasoning)."""
    message = pb.ChatMessage(role=m["role"], content=m.get("content") or "")
    # An assistant turn's reasoning, as replies give it (vLLM's name first).
    reasoning = next((m[k] for k in ("reasoning", "reasoning_content") if m.get(k) is not None),
                     None)
    if reasoning is not None and m["role"] == "assistant":
        message.reasoning = reasoning
    for call in m.get("tool_calls") or []:
        f = call.get("function", call)
        if "name" not in f:
            raise ValueError("a tool call without a name (a streamed piece? join a stream's "
                             "pieces with join_tool_calls first)")
        message.tool_calls.add(id=call.get("id", ""), name=f["name"],
                               arguments=_json_text(f.get("arguments", {})))
    return message


def set_tool_choice(chat, choice):
    """OpenAI's tool_choice ("auto", "none", "required", or {"type": "function",
    "function": {"name": ...}}) as ChatInput's tool_choice and tool_choice_function."""
    modes = {"auto": pb.TOOL_CHOICE_AUTO, "none": pb.TOOL_CHOICE_NONE,
             "required": pb.TOOL_CHOICE_REQUIRED}
    if choice is None:
        return
    if isinstance(choice, str) and choice in modes:
        chat.tool_choice = modes[choice]
    elif isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        chat.tool_choice = pb.TOOL_CHOICE_FUNCTION
        chat.tool_choice_function = choice["function"]["name"]
    else:
        raise ValueError('tool_choice is "auto", "none", "required" or '
                         '{"type": "function", "function": {"name": ...}}')


def tool(t):
    """A tool as OpenAI's API shapes it ({"type": "function", "function": {"name",
    "description", "parameters", "strict"}}), or its function alone."""
    f = t.get("function", t)
    return pb.Tool(name=f["name"], description=f.get("description") or "",
                   parameters=_json_text(f["parameters"]) if f.get("parameters") else "",
                   strict=f.get("strict") is True)


def _tool_call(c):
    """A response's call, or a streamed call's further piece (no id)."""
    if not c.id:
        return {"index": c.index, "function": {"arguments": c.arguments}}
    return {"index": c.index, "id": c.id, "type": "function",
            "function": {"name": c.name, "arguments": c.arguments}}


def join_tool_calls(pieces):
    """The calls a stream's tool_calls pieces (stream_tool_calls) make, joined
    by index as OpenAI's clients join streamed deltas, in index order."""
    calls = {}
    for p in pieces:
        f = p.get("function", {})
        call = calls.setdefault(p["index"], {"index": p["index"], "id": "", "type": "function",
                                             "function": {"name": "", "arguments": ""}})
        if p.get("id"):
            call["id"] = p["id"]
            call["function"]["name"] = f.get("name", "")
        call["function"]["arguments"] += f.get("arguments", "")
    return [calls[i] for i in sorted(calls)]


def to_chunk(message):
    chunk = Chunk(text=message.text, token_ids=list(message.token_ids),
                  request_id=message.request_id, reasoning=message.reasoning,
                  tool_calls=[_tool_call(c) for c in message.tool_calls])
    for lp in message.logprobs:
        chunk.logprobs.append(Logprobs(
            TokenLogprob(lp.chosen.token_id, lp.chosen.logprob),
            [TokenLogprob(t.token_id, t.logprob) for t in lp.top]))
    if message.finish_reason != pb.FINISH_REASON_UNSPECIFIED:
        chunk.finish_reason = FINISH_REASONS.get(message.finish_reason, "unspecified")
    if message.HasField("usage"):
        u = message.usage
        chunk.usage = Usage(u.prompt_tokens, u.cached_prompt_tokens, u.completion_tokens)
    if message.HasField("timings"):
        t = message.timings
        chunk.timings = Timings(t.queue_time_ms, t.time_to_first_token_ms,
                                t.decode_tokens_per_second, t.e2e_ms)
    return chunk


def model_state(value):
    """The state's name, lower case; "unknown" for one a newer server added."""
    try:
        return pb.ModelState.Name(value).replace("MODEL_STATE_", "").lower()
    except ValueError:
        return "unknown"


def to_model(info):
    return ModelInfo(name=info.name, state=model_state(info.state), serving=info.serving,
                     device=info.device, context_length=info.context_length, path=info.path)


def channel_credentials(root_certificates=None, private_key=None, certificate_chain=None):
    """TLS credentials from PEM bytes, or None for plain text."""
    if root_certificates is None and private_key is None and certificate_chain is None:
        return None
    return grpc.ssl_channel_credentials(root_certificates=root_certificates,
                                        private_key=private_key,
                                        certificate_chain=certificate_chain)


def call_metadata(api_key, tenant):
    md = []
    if api_key:
        md.append(("authorization", "Bearer " + api_key))
    if tenant:
        md.append(("x-cohost-tenant", tenant))
    return md
