#!/usr/bin/env python3
"""The Python client package (clients/python, cohost-client, built from the
committed proto) against `cohost serve`, beside the C++ clients.

Starts `cohost serve` on the default model on port 0, streams a greedy
generation with token input (the transformers reference's prompt) through
`cohost_client.Client`, checks the deltas arrive in several chunks and the
last one carries finish_reason "length", usage and timings; the same through
`AsyncClient`; that an unknown model raises `NotFound` and an empty input
`InvalidArgument`; over mutual TLS with certificates made by openssl (and
refused without a client certificate); runs the C++ clients (`generate`, `models`, `bench` of the
client-only program `cohost-client`, or of `cohost` without --client) against
the same server; then SIGTERMs the server and expects exit status 0.

Usage: client_test.py [--cohost BIN] [--client BIN] [--model PATH] (or
COHOST_BINARY / COHOST_MODEL). Runs in the virtualenv scripts/test_venv.sh
makes, where cohost-client is installed from the tree.
"""

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import tempfile
import time

from serve_process import ServeProcess, check

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REFERENCE = os.path.join(SOURCE_DIR, "tests", "data", "forward_reference_smollm2.json")


def check_cli(binary, address, reference):
    """The C++ clients against the same server: generate, models, bench."""
    def cohost(*args):
        return subprocess.run([binary] + list(args), capture_output=True, text=True, timeout=300)

    ids = ",".join(str(i) for i in reference["prompt_ids"])
    out = cohost("generate", "--server", address, "--model", "default", "--tokens", ids,
                 "--temperature", "0", "--max-tokens", str(len(reference["greedy_ids"])),
                 "--ignore-eos", "--json")
    check(out.returncode == 0, "cohost generate --json: %s" % out.stderr)
    result = json.loads(out.stdout)
    out = cohost("generate", "--server", address, "--model", "default", "--tokens", ids,
                 "--system", "be brief")
    check(out.returncode != 0 and "--system" in out.stderr,
          "cohost generate --tokens --system dropped the system prompt: %s" % out.stderr)
    check(result["generated_ids"] == reference["greedy_ids"], "generate: %s" % result)
    check(result["finish_reason"] == "length" and result["ttft_ms"] > 0, "generate: %s" % result)
    out = cohost("generate", "--server", address, "--model", "default", "--chat",
                 "--prompt", "A JSON object with a name, please.", "--json-object",
                 "--temperature", "0", "--max-tokens", "100", "--json")
    check(out.returncode == 0, "cohost generate --json-object: %s" % out.stderr)
    result = json.loads(out.stdout)
    check(result["finish_reason"] == "length" or isinstance(json.loads(result["text"]), dict),
          "generate --json-object: %s" % result)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"type": "object", "required": ["name"],
                   "properties": {"name": {"type": "string", "maxLength": 30}}}, f)
    out = cohost("generate", "--server", address, "--model", "default", "--chat",
                 "--prompt", "A JSON object with a name, please.", "--json-schema", f.name,
                 "--temperature", "0", "--max-tokens", "60", "--json")
    os.unlink(f.name)
    check(out.returncode == 0, "cohost generate --json-schema: %s" % out.stderr)
    result = json.loads(out.stdout)
    check(result["finish_reason"] == "length" or
          list(json.loads(result["text"])) == ["name"], "generate --json-schema: %s" % result)

    # Tools reach the server, whose default model's template offers none; with
    # tool_choice none they are left out, and the chat is served.
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump([{"type": "function", "function": {
            "name": "get_weather", "parameters": {"type": "object"}}}], f)
    offered = cohost("generate", "--server", address, "--model", "default", "--chat",
                     "--prompt", "Weather?", "--tools", f.name, "--max-tokens", "2")
    left_out = cohost("generate", "--server", address, "--model", "default", "--chat",
                      "--prompt", "Weather?", "--tools", f.name, "--tool-choice", "none",
                      "--max-tokens", "2")
    unnamed = cohost("generate", "--server", address, "--model", "default", "--chat",
                     "--prompt", "Weather?", "--tools", f.name, "--tool-choice", "get_time",
                     "--max-tokens", "2")
    os.unlink(f.name)
    check(offered.returncode == 1 and "FAILED_PRECONDITION" in offered.stderr and
          "tool calling" in offered.stderr, "generate --tools: %s" % offered.stderr)
    check(left_out.returncode == 0, "generate --tool-choice none: %s" % left_out.stderr)
    check(unnamed.returncode == 1 and "INVALID_ARGUMENT" in unnamed.stderr and
          "does not offer" in unnamed.stderr, "generate --tool-choice get_time: %s" % unnamed.stderr)
    out = cohost("generate", "--server", address, "--model", "default", "--prompt", "hi",
                 "--tool-choice", "none")
    check(out.returncode == 1 and "need --chat" in out.stderr, "--tool-choice without --chat")

    out = cohost("generate", "--server", address, "--model", "nope", "--prompt", "hi")
    check(out.returncode == 1 and "cohost generate: NOT_FOUND: " in out.stderr,
          "generate with an unknown model: %d %s" % (out.returncode, out.stderr))

    out = cohost("models", "--server", address, "--json")
    check(out.returncode == 0 and json.loads(out.stdout)[0]["name"] == "default",
          "cohost models: %s %s" % (out.stdout, out.stderr))
    out = cohost("models", "--server", address)
    lines = out.stdout.splitlines()
    check(out.returncode == 0 and "LAST USED" in lines[0] and lines[1].startswith("default ")
          and " ready " in lines[1] and (" ago " in lines[1] or " now " in lines[1]),
          "cohost models table: %s %s" % (out.stdout, out.stderr))

    with tempfile.TemporaryDirectory(prefix="cohost-bench-") as tmp:
        report_path = os.path.join(tmp, "bench.json")
        out = cohost("bench", "--server", address, "--model", "default", "--concurrency", "2",
                     "--num-requests", "4", "--prompt-tokens", "8", "--max-tokens", "4",
                     "--ignore-eos", "--output", report_path)
        check(out.returncode == 0, "cohost bench: %s" % out.stderr)
        report = json.load(open(report_path))
    check(report["requests"]["completed"] == 4 and report["output_tokens"] == 16,
          "bench report: %s" % report)
    check(report["ttft_ms"]["count"] == 4 and report["tpot_ms"]["p50"] > 0,
          "bench report: %s" % report)
    # Flags whose values would overflow are refused before any request: a drain
    # timeout past int64 nanoseconds (it cancelled everything at once), a
    # prompt of 2^31 ids (8 GiB a request).
    for bad, why in ((["--drain-timeout", "1e10"], "at most 1e9"),
                     (["--prompt-tokens", "2147483647"], "prompt-tokens")):
        out = cohost("bench", "--server", address, "--model", "default", "--num-requests", "1",
                     "--max-tokens", "1", *bad)
        check(out.returncode != 0 and why in out.stderr,
              "cohost bench %s: %d %s" % (" ".join(bad), out.returncode, out.stderr))


def check_stream(chunks, prompt_ids, greedy_ids, reference):
    with_tokens = [c for c in chunks if c.token_ids]
    check(len(with_tokens) >= 2, "expected deltas in several chunks, got %d" % len(with_tokens))
    generated = [t for c in chunks for t in c.token_ids]
    check(generated == greedy_ids,
          "greedy tokens differ from the reference:\n %s\n %s" % (generated, greedy_ids))
    check(chunks[0].request_id != "", "the first chunk has no request_id")
    last = chunks[-1]
    check(last.finish_reason == "length", "finish_reason %s" % last.finish_reason)
    check(last.usage is not None, "the last chunk has no usage")
    check(last.usage.prompt_tokens == len(prompt_ids), "usage %s" % last.usage)
    check(last.usage.completion_tokens == len(greedy_ids), "usage %s" % last.usage)
    check(last.timings is not None and last.timings.time_to_first_token_ms > 0,
          "timings %s" % last.timings)
    # The server's text leaves out special tokens (ChatML markers here).
    text = "".join(c.text for c in chunks)
    expected_text = re.sub(r"<\|im_(start|end)\|>", "", reference["greedy_text"])
    check(text == expected_text, "text %r differs from the reference %r" % (text, expected_text))


def check_tls(binary, model):
    """cohost-client over TLS, and mutual TLS, with certificates made here."""
    import cohost_client

    with tempfile.TemporaryDirectory(prefix="cohost-tls-") as d:
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

        def openssl(*args):
            subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True)
        openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                "-subj", "/CN=test-ca")
        with open(os.path.join(d, "san.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        for name in ("server", "client"):
            openssl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj",
                    "/CN=" + name)
            openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                    "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", "san.ext")

        def pem(name):
            return open(os.path.join(d, name), "rb").read()
        server = ServeProcess(binary, "--model", "default=" + model, "--footprint-file", "none",
                              "--tls-cert", os.path.join(d, "server.pem"),
                              "--tls-key", os.path.join(d, "server.key"),
                              "--tls-client-ca", os.path.join(d, "ca.pem"))
        try:
            address = server.wait_ready()
            with cohost_client.Client(address, root_certificates=pem("ca.pem"),
                                      private_key=pem("client.key"),
                                      certificate_chain=pem("client.pem"), timeout=60) as c:
                chunks = list(c.generate("default", prompt="Hi", max_tokens=3))
                check(chunks[-1].usage.completion_tokens >= 1, chunks[-1])
            # The C++ client's TLS flags, with and without a client certificate.
            models = ["models", "--server", address, "--json", "--tls-ca",
                      os.path.join(d, "ca.pem")]
            mutual = ["--tls-cert", os.path.join(d, "client.pem"), "--tls-key",
                      os.path.join(d, "client.key")]
            out = subprocess.run([binary] + models + mutual, capture_output=True, text=True,
                                 timeout=60)
            check(out.returncode == 0 and json.loads(out.stdout)[0]["name"] == "default",
                  "cohost models over mutual TLS: " + out.stderr)
            out = subprocess.run([binary] + models, capture_output=True, text=True, timeout=60)
            check(out.returncode != 0, "cohost models without a client certificate succeeded")
            # Without a client certificate: refused.
            with cohost_client.Client(address, root_certificates=pem("ca.pem"), timeout=10) as c:
                try:
                    c.list_models()
                    raise AssertionError("mutual TLS let a client without a certificate in")
                except cohost_client.Unavailable:
                    pass
        except BaseException:
            server.dump_and_kill("TLS server")
            raise
        finally:
            server.stop(signal.SIGKILL)


def check_tenants(binary, model):
    """A configuration file's tenant budgets: a tenant over its token rate is
    refused with a pushback, another is served; TTFT predictions are exported."""
    import cohost_client

    with tempfile.TemporaryDirectory(prefix="cohost-tenants-") as d:
        config = os.path.join(d, "models.yaml")
        with open(config, "w") as f:
            f.write("models:\n  - {name: default, path: %s}\n"
                    "tenants:\n  - {name: metered, tokens_per_minute: 100, weight: 2}\n"
                    % json.dumps(model))
        server = ServeProcess(binary, "--config", config, "--footprint-file", "none")
        try:
            address = server.wait_ready()
            request = dict(tokens=list(range(100, 140)), max_tokens=30, temperature=0.0,
                           ignore_eos=True)
            with cohost_client.Client(address, tenant="metered", timeout=300) as c:
                list(c.generate("default", **request))  # 40 + 30 of 100 tokens
                try:
                    list(c.generate("default", **request))
                    raise AssertionError("a tenant over its budget was served")
                except cohost_client.ResourceExhausted as e:
                    # 10 tokens short at 100 a minute: about 6 s.
                    check("100 tokens per minute" in str(e), e)
                    check(e.retry_after_ms is not None and 1000 <= e.retry_after_ms <= 6000,
                          "pushback %s" % e.retry_after_ms)
            with cohost_client.Client(address, tenant="free", timeout=300) as c:
                for _ in range(3):
                    list(c.generate("default", **request))
            predicted = server.metric('cohost_ttft_predictions_total{model="default"}')
            check(predicted is not None and predicted >= 1, "predictions: %s" % predicted)
        except BaseException:
            server.dump_and_kill()
            raise
        code = server.stop(signal.SIGTERM)
        check(code == 0, "server exited with %s; stderr:\n%s" % (code, "".join(server.log)))


def run(binary, client, model):
    import cohost_client

    from cohost_client._common import model_state
    from cohost_client.v1 import inference_pb2
    check(model_state(1000) == "unknown", "a model state a newer server added")
    # Registered under the server's name, which no other package's proto takes.
    check(inference_pb2.DESCRIPTOR.name == "cohost/v1/inference.proto",
          inference_pb2.DESCRIPTOR.name)

    reference = json.load(open(REFERENCE))["cases"][0]
    prompt_ids = reference["prompt_ids"]
    greedy_ids = reference["greedy_ids"]
    request = dict(tokens=prompt_ids, max_tokens=len(greedy_ids), temperature=0.0,
                   ignore_eos=True)

    # The exact fp32 path: its greedy tokens are transformers' (the default int8
    # path is held to llama.cpp by llamacpp_reference_test).
    server = ServeProcess(binary, "--model", "default=" + model, "--cpu-precision", "reference",
                          "--footprint-file", "none")
    try:
        address = server.wait_ready()
        with cohost_client.Client(address, tenant="python-test", timeout=300) as c:
            models = c.list_models()
            check([m.name for m in models] == ["default"], "list_models: %s" % models)
            check(models[0].state == "ready" and models[0].context_length > 0, models[0])
            check_stream(list(c.generate("default", **request)), prompt_ids, greedy_ids,
                         reference)
            # JSON mode over gRPC: the text is a JSON object (or its start, at max_tokens).
            chunks = list(c.generate("default", messages=[
                {"role": "user", "content": "Give me a JSON object about a dog."}],
                max_tokens=120, temperature=1.0, seed=5, json_object=True))
            text = "".join(chunk.text for chunk in chunks)
            check(chunks[-1].finish_reason == "length" or isinstance(json.loads(text), dict),
                  "json_object: %r" % text)
            check(text.lstrip().startswith("{"), "json_object: %r" % text)
            # A JSON Schema, as a dict: the document has its one required key.
            schema = {"type": "object", "properties": {"name": {"type": "string",
                                                                 "maxLength": 12}},
                      "required": ["name"]}
            chunks = list(c.generate("default", messages=[
                {"role": "user", "content": "Give me a JSON object with a dog's name."}],
                max_tokens=60, temperature=0.7, seed=3, json_schema=schema))
            text = "".join(chunk.text for chunk in chunks)
            if chunks[-1].finish_reason != "length":
                doc = json.loads(text)
                check(list(doc) == ["name"] and len(doc["name"]) <= 12, "json_schema: %r" % text)
            # A stop token id ends the stream where the greedy reference writes it.
            stop_id = greedy_ids[3]
            chunks = list(c.generate("default", tokens=prompt_ids, max_tokens=len(greedy_ids),
                                     temperature=0.0, ignore_eos=True, stop_token_ids=[stop_id]))
            ids = [t for chunk in chunks for t in chunk.token_ids]
            k = greedy_ids.index(stop_id)
            check(chunks[-1].finish_reason == "stop" and
                  ids in (greedy_ids[:k], greedy_ids[:k + 1]), "stop_token_ids: %s" % ids)
            try:
                list(c.generate("default", prompt="hi", json_object=True, json_schema={}))
                raise AssertionError("json_object with json_schema was sent")
            except ValueError:
                pass
            # A response's calls (split_tool_calls) come in OpenAI's shape, which an
            # assistant message takes back.
            from cohost_client import _common
            from cohost_client.v1 import inference_pb2 as pb
            chunk = _common.to_chunk(pb.GenerateResponse(tool_calls=[
                pb.ToolCall(id="call_1", name="get_weather", arguments='{"city":"Oslo"}')]))
            check(chunk.tool_calls == [{"index": 0, "id": "call_1", "type": "function",
                                        "function": {"name": "get_weather",
                                                     "arguments": '{"city":"Oslo"}'}}],
                  chunk.tool_calls)
            # Streamed pieces (stream_tool_calls) join by index into the calls.
            pieces = [c for m in (
                pb.GenerateResponse(tool_calls=[pb.ToolCall(id="call_1", name="get_weather",
                                                            arguments='{"ci')]),
                pb.GenerateResponse(tool_calls=[
                    pb.ToolCall(arguments='ty":"Oslo"}'),
                    pb.ToolCall(id="call_2", name="now", arguments="{}", index=1)]))
                for c in _common.to_chunk(m).tool_calls]
            check(pieces[1] == {"index": 0, "function": {"arguments": 'ty":"Oslo"}'}}, pieces)
            check(cohost_client.join_tool_calls(pieces) == [
                {"index": 0, "id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
                {"index": 1, "id": "call_2", "type": "function",
                 "function": {"name": "now", "arguments": "{}"}}], pieces)
            check(_common.build_request("m", messages=[{"role": "user", "content": "hi"}],
                                        stream_tool_calls=True).stream_tool_calls,
                  "stream_tool_calls")
            try:
                _common.chat_message({"role": "assistant", "tool_calls": pieces})
                raise AssertionError("a streamed piece went back as a call")
            except ValueError as e:
                check("join_tool_calls" in str(e), e)
            back = _common.chat_message({"role": "assistant", "tool_calls": chunk.tool_calls})
            check(back.tool_calls[0].name == "get_weather" and back.tool_calls[0].id == "call_1",
                  back)
            check(_common.build_request("m", messages=[{"role": "user", "content": "hi"}],
                                        split_tool_calls=True).split_tool_calls, "split_tool_calls")
            named = _common.build_request(
                "m", messages=[{"role": "user", "content": "hi"}],
                tool_choice={"type": "function", "function": {"name": "get_weather"}},
                parallel_tool_calls=False).chat
            check(named.tool_choice == pb.TOOL_CHOICE_FUNCTION and
                  named.tool_choice_function == "get_weather" and
                  named.HasField("parallel_tool_calls") and not named.parallel_tool_calls, named)
            check(_common.build_request("m", messages=[{"role": "user", "content": "hi"}],
                                        tool_choice="required").chat.tool_choice ==
                  pb.TOOL_CHOICE_REQUIRED, "tool_choice required")
            # Tools reach the server, whose default model's template offers none.
            weather = {"type": "function", "function": {
                "name": "get_weather", "parameters": {"type": "object"}}}
            turns = [{"role": "user", "content": "Weather?"},
                     {"role": "assistant", "content": None, "tool_calls": [
                         {"id": "c1", "type": "function",
                          "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}]
            try:
                list(c.generate("default", messages=turns, tools=[weather], max_tokens=4))
                raise AssertionError("tools were served by a template without them")
            except cohost_client.FailedPrecondition as e:
                check("tool calling" in str(e), e)
            for bad, error in ((dict(model="nope", prompt="hi"), cohost_client.NotFound),
                               # SmolLM2 adds no BOS: an empty prompt is nothing.
                               (dict(model="default", prompt=""),
                                cohost_client.InvalidArgument)):
                try:
                    list(c.generate(**bad))
                    raise AssertionError("%s did not fail" % bad)
                except error as e:
                    check(e.code.name in ("NOT_FOUND", "INVALID_ARGUMENT"), e)

        async def with_asyncio():
            async with cohost_client.AsyncClient(address, timeout=300) as c:
                chunks = [chunk async for chunk in c.generate("default", **request)]
                models = await c.list_models()
                return chunks, models

        chunks, models = asyncio.run(with_asyncio())
        check_stream(chunks, prompt_ids, greedy_ids, reference)
        check([m.name for m in models] == ["default"], "async list_models: %s" % models)
        check_cli(client, address, reference)
        check_tls(binary, model)
        check_tenants(binary, model)
    except BaseException:
        server.dump_and_kill()
        raise

    code = server.stop(signal.SIGTERM)
    check(code == 0, "server exited with %s after SIGTERM; stderr:\n%s" % (code, "".join(server.log)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohost", default=os.environ.get("COHOST_BINARY"))
    parser.add_argument("--client", help="the program whose generate/models/bench to run "
                        "(default: --cohost)")
    parser.add_argument("--model", default=os.environ.get(
        "COHOST_MODEL", os.path.join(SOURCE_DIR, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")))
    args = parser.parse_args()
    if not args.cohost:
        parser.error("--cohost (or COHOST_BINARY) is required")
    if not os.path.exists(args.model):
        parser.error("model not found: " + args.model)
    start = time.time()
    run(args.cohost, args.client or args.cohost, args.model)
    print("client_test: OK (%.1f s)" % (time.time() - start))


if __name__ == "__main__":
    main()
