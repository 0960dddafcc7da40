"""The OpenAI HTTP API checked with clients nobody here wrote: the official
`openai` package and curl, against `cohost serve --http-port` on the default
model, with API keys on.

Checks: chat and text completions, whole and streamed, agree with each other
and with the gRPC API (`cohost generate`, same key); logprobs (chat and text,
whole and streamed) agree with gRPC's (cohost-client); usage counts; n=4; the
error statuses (400, 401, 403, 404; 429 with Retry-After on a full queue and 503
while draining, on a second server) with the server serving on after each;
keys on gRPC too; `curl -N` streams server-sent events; a client that
disconnects, mid-stream or while waiting for a whole reply, has its request
aborted and its KV freed; SIGTERM exits 0; function calling (tools,
tool_choice, tool turns) through the client's types, stream helper and
pydantic parsing, on the model served with Qwen3's template.

Usage: openai_test.py --cohost BIN --model PATH. Needs the packages of
tests/python/requirements.txt (scripts/test_venv.sh makes the venv).
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import openai

from serve_process import ServeProcess, check

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REFERENCE = os.path.join(SOURCE_DIR, "tests", "data", "forward_reference_smollm2.json")
USER_KEY = "user-key-for-the-openai-test"
ADMIN_KEY = "admin-key-for-the-openai-test"


def start_server(binary, model, key_file, *extra):
    # The exact fp32 path: the completions' greedy tokens are transformers'.
    return ServeProcess(binary, "--model", "smol=" + model, "--http-port", "0",
                        "--api-key-file", key_file, "--footprint-file", "none",
                        "--cpu-precision", "reference", *extra)


def wait_until(predicate, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def idle(server):
    return (server.metric('cohost_running_requests{model="smol"}') == 0 and
            server.metric('cohost_kv_cache_usage_ratio{model="smol"}') == 0)


def check_completions(client, cohost, server, reference):
    # Chat: whole, then streamed with usage; the same greedy text.
    messages = [{"role": "system", "content": "You are brief."},
                {"role": "user", "content": "Name a colour."}]
    whole = client.chat.completions.create(model="smol", messages=messages, max_tokens=12,
                                           temperature=0, extra_body={"ignore_eos": True})
    check(whole.object == "chat.completion" and len(whole.choices) == 1, whole)
    choice = whole.choices[0]
    check(choice.message.role == "assistant" and choice.message.content, choice)
    check(choice.finish_reason == "length", choice)
    check(whole.usage.completion_tokens == 12 and whole.usage.prompt_tokens > 10, whole.usage)
    check(whole.usage.total_tokens == whole.usage.prompt_tokens + 12, whole.usage)

    stream = client.chat.completions.create(model="smol", messages=messages, max_tokens=12,
                                            temperature=0, stream=True,
                                            stream_options={"include_usage": True},
                                            extra_body={"ignore_eos": True})
    text, usage, finish, chunks = "", None, None, 0
    for chunk in stream:
        chunks += 1
        check(chunk.object == "chat.completion.chunk", chunk)
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    check(chunks > 3, "expected several chunks, got %d" % chunks)
    check(text == choice.message.content, "streamed %r, whole %r" % (text, choice.message.content))
    check(finish == "length", finish)
    check(usage is not None and usage.completion_tokens == 12, usage)

    # Text completion with token ids equals gRPC's greedy text for them.
    prompt_ids, greedy_ids = reference["prompt_ids"], reference["greedy_ids"]
    completion = client.completions.create(model="smol", prompt=prompt_ids,
                                           max_tokens=len(greedy_ids), temperature=0,
                                           extra_body={"ignore_eos": True})
    check(completion.usage.prompt_tokens == len(prompt_ids), completion.usage)
    check(completion.usage.completion_tokens == len(greedy_ids), completion.usage)
    out = cohost("generate", "--server", "127.0.0.1:%d" % server.ports["grpc"], "--model", "smol",
                 "--tokens", ",".join(map(str, prompt_ids)), "--temperature", "0",
                 "--max-tokens", str(len(greedy_ids)), "--ignore-eos", "--json")
    check(out.returncode == 0, "cohost generate: " + out.stderr)
    grpc = json.loads(out.stdout)
    check(grpc["generated_ids"] == greedy_ids, grpc)
    check(completion.choices[0].text == grpc["text"],
          "HTTP %r vs gRPC %r" % (completion.choices[0].text, grpc["text"]))

    n4 = client.completions.create(model="smol", prompt="Once upon a time", max_tokens=5, n=4,
                                   temperature=0.8, seed=3)
    check(len(n4.choices) == 4 and sorted(c.index for c in n4.choices) == [0, 1, 2, 3], n4)
    check(4 <= n4.usage.completion_tokens <= 20, n4.usage)  # 1..5 each: EOS may come early
    check([m.id for m in client.models.list()] == ["smol"], "models")


def check_json_mode(client):
    """response_format json_object: the content is a JSON object, whole and streamed,
    sampled at a temperature where the unconstrained model writes prose."""
    messages = [{"role": "user", "content": "Describe a cat as JSON with a name and an age."}]
    for seed in (1, 2, 3):
        reply = client.chat.completions.create(model="smol", messages=messages, max_tokens=150,
                                               temperature=1.0, seed=seed,
                                               response_format={"type": "json_object"})
        choice = reply.choices[0]
        if choice.finish_reason == "stop":
            check(isinstance(json.loads(choice.message.content), dict), choice.message.content)
        else:
            check(choice.finish_reason == "length" and choice.message.content.lstrip()[0] == "{",
                  choice)
    stream = client.chat.completions.create(model="smol", messages=messages, max_tokens=150,
                                            temperature=0.7, seed=4, stream=True,
                                            response_format={"type": "json_object"})
    text, finish = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    check(finish == "length" or isinstance(json.loads(text), dict), text)
    # A schema, as the openai package sends a Pydantic model's (strict mode),
    # with value bounds and a pattern held too.
    cat = {"type": "object", "additionalProperties": False, "required": ["name", "age", "chip"],
           "properties": {"name": {"type": "string"},
                          "age": {"type": "integer", "minimum": 0, "maximum": 30},
                          "chip": {"type": "string", "pattern": "^[A-Z]{2}\\d{4}$"},
                          "indoor": {"type": "boolean"}}}
    whole = 0
    for seed in (1, 2, 3):
        reply = client.chat.completions.create(
            model="smol", messages=messages, max_tokens=100, temperature=1.0, seed=seed,
            response_format={"type": "json_schema",
                             "json_schema": {"name": "cat", "strict": True, "schema": cat}})
        choice = reply.choices[0]
        if choice.finish_reason != "stop":
            continue
        whole += 1
        doc = json.loads(choice.message.content)
        check(set(doc) <= {"name", "age", "chip", "indoor"} and
              {"name", "age", "chip"} <= set(doc), doc)
        check(isinstance(doc["name"], str) and type(doc["age"]) is int, doc)
        check(0 <= doc["age"] <= 30 and re.fullmatch(r"[A-Z]{2}\d{4}", doc["chip"]), doc)
    check(whole >= 1, "no schema reply ended by itself")
    # A keyword the grammar does not hold is refused, naming it, not ignored.
    try:
        client.chat.completions.create(
            model="smol", messages=messages, max_tokens=5,
            response_format={"type": "json_schema",
                             "json_schema": {"name": "cat", "schema": {
                                 "type": "object",
                                 "properties": {"host": {"type": "string",
                                                         "format": "ipv6"}}}}})
        check(False, "a schema with an unsupported format accepted")
    except openai.BadRequestError as e:
        check("format" in e.body.get("message", ""), e.body)


def check_logprobs(client, server, reference):
    """HTTP logprobs (chat and text) agree with gRPC's (cohost_client) for the same
    greedy request."""
    import cohost_client

    prompt_ids = reference["prompt_ids"]
    n = 8
    with cohost_client.Client("127.0.0.1:%d" % server.ports["grpc"], api_key=USER_KEY) as c:
        chunks = list(c.generate("smol", tokens=prompt_ids, max_tokens=n, temperature=0,
                                 ignore_eos=True, logprobs=3))
    grpc_lp = [lp for chunk in chunks for lp in chunk.logprobs]
    check(len(grpc_lp) == n, "gRPC logprobs: %d for %d tokens" % (len(grpc_lp), n))
    for lp in grpc_lp:
        check(len(lp.top) == 3 and lp.top[0].token_id == lp.chosen.token_id, lp)
        check(lp.chosen.logprob <= 0, lp)

    text = client.completions.create(model="smol", prompt=prompt_ids, max_tokens=n,
                                     temperature=0, logprobs=3, extra_body={"ignore_eos": True})
    lp = text.choices[0].logprobs
    check(len(lp.token_logprobs) == n and len(lp.tokens) == n and len(lp.top_logprobs) == n, lp)
    for http, grpc in zip(lp.token_logprobs, grpc_lp):
        check(abs(http - grpc.chosen.logprob) < 1e-5, "HTTP %s vs gRPC %s" % (http, grpc))
    check(all(len(top) <= 3 for top in lp.top_logprobs), lp.top_logprobs)
    check(lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset), lp.text_offset)

    messages = [{"role": "user", "content": "Name a colour."}]
    chat = client.chat.completions.create(model="smol", messages=messages, max_tokens=6,
                                          temperature=0, logprobs=True, top_logprobs=2,
                                          extra_body={"ignore_eos": True})
    content = chat.choices[0].logprobs.content
    check(len(content) == 6, content)
    check(all(len(e.top_logprobs) == 2 and e.logprob == e.top_logprobs[0].logprob
              for e in content), content)
    check("".join(e.token for e in content) == chat.choices[0].message.content,
          "tokens %r vs text %r" % ([e.token for e in content], chat.choices[0].message.content))
    stream = client.chat.completions.create(model="smol", messages=messages, max_tokens=6,
                                            temperature=0, logprobs=True, top_logprobs=2,
                                            stream=True, extra_body={"ignore_eos": True})
    streamed = [e for chunk in stream if chunk.choices and chunk.choices[0].logprobs
                for e in chunk.choices[0].logprobs.content]
    # The second request reuses the first's cached prompt blocks, which moves
    # the float sums a little; the tokens are the same.
    check([e.token for e in streamed] == [e.token for e in content] and
          all(abs(a.logprob - b.logprob) < 1e-3 for a, b in zip(streamed, content)),
          "streamed logprobs %s differ from whole ones %s" %
          ([e.logprob for e in streamed], [e.logprob for e in content]))
    no = client.chat.completions.create(model="smol", messages=messages, max_tokens=2)
    check(no.choices[0].logprobs is None, "logprobs without asking")


def check_logit_bias(client, server, reference):
    """logit_bias over HTTP (OpenAI's string keys) and over gRPC (cohost_client's
    logit_bias=) moves the same tokens: -100 rules the greedy token out, 100
    makes a token every draw."""
    import cohost_client

    prompt_ids = reference["prompt_ids"]
    first = reference["greedy_ids"][0]
    forced = 1234
    with cohost_client.Client("127.0.0.1:%d" % server.ports["grpc"], api_key=USER_KEY) as c:
        chunks = list(c.generate("smol", tokens=prompt_ids, max_tokens=3, temperature=0,
                                 ignore_eos=True, logit_bias={forced: 100}))
        ids = [t for chunk in chunks for t in chunk.token_ids]
        check(ids == [forced] * 3, "gRPC logit_bias 100: %s" % ids)
        chunks = list(c.generate("smol", tokens=prompt_ids, max_tokens=1, temperature=0,
                                 logit_bias={first: -100}))
        ids = [t for chunk in chunks for t in chunk.token_ids]
        check(len(ids) == 1 and ids[0] != first, "gRPC logit_bias -100: %s" % ids)
    grpc_text = "".join(chunk.text for chunk in chunks)

    text = client.completions.create(model="smol", prompt=prompt_ids, max_tokens=1,
                                     temperature=0, logit_bias={str(first): -100})
    check(text.choices[0].text == grpc_text,
          "HTTP %r vs gRPC %r" % (text.choices[0].text, grpc_text))
    try:
        client.completions.create(model="smol", prompt=prompt_ids, max_tokens=1,
                                  logit_bias={"1": 101})
        raise AssertionError("a bias past 100 was served")
    except openai.BadRequestError as e:
        check("logit_bias" in e.body.get("message", ""), e.body)


def check_errors(base_url, client):
    def expect(error_type, status, call):
        try:
            call()
        except error_type as e:
            check(e.status_code == status, "%s: status %s" % (error_type.__name__, e.status_code))
            return
        raise AssertionError("expected %s" % error_type.__name__)

    hi = [{"role": "user", "content": "Hi"}]
    expect(openai.NotFoundError, 404,
           lambda: client.chat.completions.create(model="nope", messages=hi))
    expect(openai.BadRequestError, 400, lambda: client.chat.completions.create(
        model="smol", messages=[{"role": "wizard", "content": "Hi"}]))
    expect(openai.BadRequestError, 400, lambda: client.chat.completions.create(
        model="smol", messages=hi, temperature=500))
    expect(openai.BadRequestError, 400, lambda: client.completions.create(
        model="smol", prompt="Hi", max_tokens=100000))
    # SmolLM2's own template offers no tools.
    expect(openai.BadRequestError, 400, lambda: client.chat.completions.create(
        model="smol", messages=hi, tools=[WEATHER_TOOL]))
    no_key = openai.OpenAI(base_url=base_url, api_key="not-a-key-of-this-server")
    expect(openai.AuthenticationError, 401,
           lambda: no_key.chat.completions.create(model="smol", messages=hi))
    spoof = openai.OpenAI(base_url=base_url, api_key=USER_KEY,
                          default_headers={"x-cohost-tenant": "someone-else"})
    expect(openai.PermissionDeniedError, 403,
           lambda: spoof.chat.completions.create(model="smol", messages=hi, max_tokens=2))
    # Serving on.
    ok = client.chat.completions.create(model="smol", messages=hi, max_tokens=2)
    check(ok.choices[0].finish_reason in ("stop", "length"), ok)


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object",
                   "properties": {"city": {"type": "string"},
                                  "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"]}}}
WEATHER_CHOICE = {"type": "function", "function": {"name": "get_weather"}}
QWEN3_TEMPLATE = os.path.join(SOURCE_DIR, "tests", "data", "chat_templates", "qwen3.jinja")


def check_tools(binary, model, key_file, tmp):
    """Function calling through the official client's types and stream helper,
    on the default model served with Qwen3's chat template (a config file's
    chat_template), which offers tools: a named tool_choice holds the answer
    to the function's parameters and gives one call, whole, streamed (its
    arguments in pieces) and parsed into a pydantic model; tool_choice "none" leaves the tools out of
    the prompt; a conversation with a call and its result is served."""
    import pydantic

    config = os.path.join(tmp, "tools.yaml")
    with open(config, "w") as f:
        f.write("models:\n  - name: qwenish\n    path: %s\n    chat_template: %s\n" % (
            json.dumps(model), json.dumps(QWEN3_TEMPLATE)))
    server = ServeProcess(binary, "--config", config, "--http-port", "0", "--api-key-file",
                          key_file, "--footprint-file", "none", "--cpu-precision", "reference")
    try:
        server.wait_ready()
        client = openai.OpenAI(base_url="http://127.0.0.1:%d/v1" % server.ports["http"],
                               api_key=USER_KEY, max_retries=0)
        ask = dict(model="qwenish", max_tokens=60, temperature=0,
                   messages=[{"role": "user", "content": "What is the weather in Paris?"}])

        def check_weather_call(message, finish_reason):
            check(finish_reason == "stop", finish_reason)  # a named call's, as OpenAI's
            check(message.content is None and len(message.tool_calls) == 1, message)
            call = message.tool_calls[0]
            check(call.type == "function" and call.id.startswith("call_"), call)
            check(call.function.name == "get_weather", call)
            arguments = json.loads(call.function.arguments)
            check(sorted(arguments) == ["city", "unit"] and isinstance(arguments["city"], str)
                  and arguments["unit"] in ("celsius", "fahrenheit"), arguments)
            return call

        whole = client.chat.completions.create(tools=[WEATHER_TOOL], tool_choice=WEATHER_CHOICE,
                                               **ask)
        call = check_weather_call(whole.choices[0].message, whole.choices[0].finish_reason)

        with client.chat.completions.stream(tools=[WEATHER_TOOL], tool_choice=WEATHER_CHOICE,
                                            **ask) as stream:
            events = [event.type for event in stream]
            final = stream.get_final_completion()
        check("tool_calls.function.arguments.done" in events, events)
        # The arguments go out as the model writes them, not whole at the end.
        check(events.count("tool_calls.function.arguments.delta") > 1, events)
        streamed = check_weather_call(final.choices[0].message, final.choices[0].finish_reason)
        check(json.loads(streamed.function.arguments) == json.loads(call.function.arguments),
              "streamed %r, whole %r" % (streamed.function.arguments, call.function.arguments))

        class GetWeather(pydantic.BaseModel):
            city: str
            unit: str

        parsed = client.chat.completions.parse(
            tools=[openai.pydantic_function_tool(GetWeather, name="get_weather")],
            tool_choice=WEATHER_CHOICE, **ask)
        got = parsed.choices[0].message.tool_calls[0].function.parsed_arguments
        check(isinstance(got, GetWeather) and got.city, got)

        offered = client.chat.completions.create(tools=[WEATHER_TOOL], **dict(ask, max_tokens=2))
        none = client.chat.completions.create(tools=[WEATHER_TOOL], tool_choice="none",
                                              **dict(ask, max_tokens=2))
        check(offered.usage.prompt_tokens > none.usage.prompt_tokens + 100,
              "prompt tokens: %d with the tools, %d without" % (
                  offered.usage.prompt_tokens, none.usage.prompt_tokens))
        check(none.choices[0].message.tool_calls is None, none)

        turns = ask["messages"] + [
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": call.id, "type": "function", "function": {
                 "name": "get_weather", "arguments": call.function.arguments}}]},
            {"role": "tool", "tool_call_id": call.id, "content": "18 degrees, sunny"}]
        answer = client.chat.completions.create(tools=[WEATHER_TOOL],
                                                **dict(ask, messages=turns, max_tokens=8))
        # The call and its result are in the prompt (what the model answers, a
        # tiny one, is not checked).
        check(answer.usage.prompt_tokens > offered.usage.prompt_tokens + 20, answer.usage)
    except BaseException:
        server.dump_and_kill("tools server")
        raise
    check(server.stop() == 0, "tools server exit status")


def check_grpc_keys(cohost, server):
    address = "127.0.0.1:%d" % server.ports["grpc"]
    env = dict(os.environ)
    env.pop("COHOST_API_KEY", None)
    out = cohost("models", "--server", address, env=env)
    check(out.returncode != 0 and "UNAUTHENTICATED" in out.stderr, "models without a key: " +
          out.stderr)
    out = cohost("models", "--server", address, "--json")
    check(out.returncode == 0 and json.loads(out.stdout)[0]["name"] == "smol", out.stderr)


def check_curl_and_disconnects(server):
    port = server.ports["http"]
    body = json.dumps({"model": "smol", "prompt": "Once upon a time", "max_tokens": 8,
                       "temperature": 0, "stream": True})
    out = subprocess.run(["curl", "-sN", "http://127.0.0.1:%d/v1/completions" % port,
                          "-H", "Authorization: Bearer " + USER_KEY,
                          "-H", "Content-Type: application/json", "-d", body],
                         capture_output=True, text=True, timeout=60)
    check(out.returncode == 0, "curl: " + out.stderr)
    events = [e for e in out.stdout.split("\n\n") if e]
    check(len(events) >= 3 and all(e.startswith("data: ") for e in events), out.stdout)
    check(events[-1] == "data: [DONE]", events[-1])

    long_request = {"model": "smol", "prompt": "Once upon a time", "max_tokens": 4000,
                    "ignore_eos": True}
    for stream in (True, False):
        long_request["stream"] = stream
        payload = json.dumps(long_request).encode()
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                     USER_KEY.encode() + b"\r\nContent-Type: application/json\r\n" +
                     b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
        if stream:
            check(b"data: " in sock.recv(65536), "no first event")
        else:
            wait_until(lambda: server.metric('cohost_running_requests{model="smol"}') == 1, 30,
                       "the request to run")
        sock.close()
        # Aborted long before its 4000 tokens (minutes on this model).
        wait_until(lambda: idle(server), 5,
                   "the %s request of a gone client to be freed" % ("streamed" if stream else "whole"))


def check_full_queue_and_drain(binary, model, key_file):
    """429 with Retry-After when the queue is full, 503 while draining, on a
    server that runs one sequence and queues one."""
    server = start_server(binary, model, key_file, "--max-seqs", "1", "--max-queued-requests", "1",
                    "--drain-seconds", "8")
    try:
        server.wait_ready()
        base_url = "http://127.0.0.1:%d/v1" % server.ports["http"]
        client = openai.OpenAI(base_url=base_url, api_key=USER_KEY, max_retries=0)
        long = dict(model="smol", prompt="Once upon a time", max_tokens=4000, stream=True,
                    extra_body={"ignore_eos": True})
        running = client.completions.create(**long)
        next(iter(running))  # it runs: the one sequence the server steps
        queued = []

        def queue_one():
            queued.append(client.completions.create(**long))
            next(iter(queued[0]))
        thread = threading.Thread(target=queue_one, daemon=True)
        thread.start()
        wait_until(lambda: server.metric('cohost_waiting_requests{model="smol"}') == 1, 30,
                   "a queued request")
        try:
            client.completions.create(model="smol", prompt="Hi", max_tokens=2)
            raise AssertionError("a full queue did not refuse")
        except openai.RateLimitError as e:
            check(e.status_code == 429, e)
            retry = e.response.headers.get("retry-after")
            check(retry is not None and 1 <= int(retry) <= 60, "Retry-After %r" % retry)
        # The same refusal on gRPC, through cohost-client's typed error.
        import cohost_client
        with cohost_client.Client(server.wait_ready(), api_key=USER_KEY) as c:
            try:
                list(c.generate("smol", prompt="Hi", max_tokens=2))
                raise AssertionError("a full queue did not refuse on gRPC")
            except cohost_client.ResourceExhausted as e:
                check(e.code.name == "RESOURCE_EXHAUSTED" and e.retry_after_ms == 500,
                      "pushback %s" % e.retry_after_ms)

        server.proc.send_signal(signal.SIGTERM)  # drains: the two streams may finish
        wait_until(lambda: any("draining" in line for line in server.log), 10, "the drain")
        try:
            client.completions.create(model="smol", prompt="Hi", max_tokens=2)
            raise AssertionError("a draining server did not refuse")
        except openai.APIStatusError as e:
            check(e.status_code == 503, "status %s while draining" % e.status_code)
        health = urllib.request.Request("http://127.0.0.1:%d/health" % server.ports["http"])
        try:
            urllib.request.urlopen(health, timeout=10)
            raise AssertionError("health was ready while draining")
        except urllib.error.HTTPError as e:
            check(e.code == 503, "health %s while draining" % e.code)
        running.close()  # the client leaves; the drain ends
        if queued:
            queued[0].close()
        check(server.proc.wait(60) == 0, "exit status after the drain")
    except BaseException:
        server.dump_and_kill("second server")
        raise


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cohost", required=True)
    parser.add_argument("--model", required=True)
    args = parser.parse_args()
    reference = json.load(open(REFERENCE))["cases"][0]

    with tempfile.TemporaryDirectory() as tmp:
        key_file = os.path.join(tmp, "keys.txt")
        with open(key_file, "w") as f:
            f.write("# test keys\n%s tenant=alice\n%s role=admin\n" % (USER_KEY, ADMIN_KEY))
        server = start_server(args.cohost, args.model, key_file)
        try:
            server.wait_ready()
            base_url = "http://127.0.0.1:%d/v1" % server.ports["http"]
            client = openai.OpenAI(base_url=base_url, api_key=USER_KEY, max_retries=0)
            env = dict(os.environ, COHOST_API_KEY=USER_KEY)

            def cohost(*a, env=env):
                return subprocess.run([args.cohost] + list(a), capture_output=True, text=True,
                                      timeout=300, env=env)

            check_completions(client, cohost, server, reference)
            check_logprobs(client, server, reference)
            check_logit_bias(client, server, reference)
            check_json_mode(client)
            check_errors(base_url, client)
            check_grpc_keys(cohost, server)
            check_curl_and_disconnects(server)
            # The user key's tenant has its own series.
            alice = server.metric('cohost_tenant_requests_total{tenant="alice"}')
            check(alice is not None and alice > 0, "tenant requests %s" % alice)
            health = urllib.request.urlopen("http://127.0.0.1:%d/health" % server.ports["http"])
            check(health.status == 200, "health")
        except BaseException:
            server.dump_and_kill()
            raise
        code = server.stop()
        check(code == 0, "exit status %s; stderr:\n%s" % (code, "".join(server.log)))
        check_full_queue_and_drain(args.cohost, args.model, key_file)
        check_tools(args.cohost, args.model, key_file, tmp)
    print("openai_test: all checks passed")


if __name__ == "__main__":
    main()
