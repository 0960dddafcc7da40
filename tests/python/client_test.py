#!/usr/bin/python3
"""A client nobody here wrote: grpcio stubs generated from the committed proto.

Starts `cohost serve` on the default model on port 0, streams a greedy
generation with token input (the transformers reference's prompt), checks the
deltas arrive in several messages and the last one carries finish_reason
LENGTH, usage and timings, checks an unknown model gives NOT_FOUND, runs the
C++ clients (`generate`, `models`, `bench` of the client-only program
`cohost-client`, or of `cohost` without --client) against the same server,
then SIGTERMs the server and expects exit status 0.

Usage: client_test.py [--cohost BIN] [--client BIN] [--model PATH] (or
COHOST_BINARY / COHOST_MODEL). Runs with Debian's /usr/bin/python3 (python3-grpcio).
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO_DIR = os.path.join(SOURCE_DIR, "proto")
PROTO = os.path.join(PROTO_DIR, "cohost", "v1", "inference.proto")
REFERENCE = os.path.join(SOURCE_DIR, "tests", "data", "forward_reference_smollm2.json")
LISTENING = re.compile(r"listening on (\S+):(\d+)")


def generate_stubs(out_dir):
    """Python messages and stubs for the proto, into out_dir.

    Debian's python3-grpc-tools (1.14) bundles a protoc that predates proto3
    `optional`, so its grpc_tools.protoc is tried first and the system protoc
    with grpc_python_plugin (protobuf-compiler-grpc) is the fallback.
    """
    common = ["-I" + PROTO_DIR, "--python_out=" + out_dir, "--grpc_python_out=" + out_dir, PROTO]
    tried = []
    run = subprocess.run([sys.executable, "-m", "grpc_tools.protoc"] + common,
                         capture_output=True, text=True)
    if run.returncode == 0:
        return
    err = run.stderr.strip().splitlines()
    tried.append("grpc_tools.protoc: " + (err[-1] if err else "exit %d" % run.returncode))
    protoc = shutil.which("protoc")
    plugin = shutil.which("grpc_python_plugin")
    if protoc and plugin:
        run = subprocess.run([protoc, "--plugin=protoc-gen-grpc_python=" + plugin] + common,
                             capture_output=True, text=True)
        if run.returncode == 0:
            return
        tried.append("protoc: " + run.stderr.strip())
    raise RuntimeError("cannot generate Python stubs: " + "; ".join(tried))


class Server:
    """`cohost serve` as a child process; stderr is collected on a thread."""

    def __init__(self, binary, model):
        self.proc = subprocess.Popen(
            [binary, "serve", "--model", "default=" + model, "--port", "0",
             "--metrics-port", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log = []
        self.address = None
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.log.append(line)
            m = LISTENING.search(line)
            if m and self.address is None:
                host = m.group(1)
                if host in ("0.0.0.0", "[::]", "::", ""):
                    host = "127.0.0.1"
                self.address = "%s:%s" % (host, m.group(2))
                self.ready.set()
        self.ready.set()  # exited: wake the waiter

    def wait_ready(self, timeout):
        self.ready.wait(timeout)
        if self.address is None:
            raise AssertionError("server did not report 'listening on HOST:PORT'; stderr:\n" +
                                 "".join(self.log))
        return self.address

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("server did not exit within %d s of SIGTERM" % timeout)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


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
    check(result["generated_ids"] == reference["greedy_ids"], "generate: %s" % result)
    check(result["finish_reason"] == "length" and result["ttft_ms"] > 0, "generate: %s" % result)

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


def run(binary, client, model):
    import grpc  # Debian's python3-grpcio
    from cohost.v1 import inference_pb2 as pb
    from cohost.v1 import inference_pb2_grpc as pb_grpc

    reference = json.load(open(REFERENCE))["cases"][0]
    prompt_ids = reference["prompt_ids"]
    greedy_ids = reference["greedy_ids"]

    server = Server(binary, model)
    try:
        address = server.wait_ready(timeout=300)
        channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = pb_grpc.InferenceStub(channel)

        models = stub.ListModels(pb.ListModelsRequest(), timeout=30).models
        check([m.name for m in models] == ["default"], "ListModels: %s" % models)
        check(models[0].vocab_size > 0, "vocab_size is 0")

        request = pb.GenerateRequest(model="default", max_tokens=len(greedy_ids),
                                     ignore_eos=True)
        request.tokens.ids.extend(prompt_ids)
        request.sampling.temperature = 0.0
        messages = list(stub.Generate(request, timeout=300,
                                      metadata=[("x-cohost-tenant", "python-test")]))
        with_tokens = [m for m in messages if m.token_ids]
        check(len(with_tokens) >= 2,
              "expected deltas in several messages, got %d" % len(with_tokens))
        generated = [t for m in messages for t in m.token_ids]
        check(generated == greedy_ids,
              "greedy tokens differ from the reference:\n %s\n %s" % (generated, greedy_ids))
        check(messages[0].request_id != "", "the first message has no request_id")
        last = messages[-1]
        check(last.finish_reason == pb.FINISH_REASON_LENGTH,
              "finish_reason %s" % pb.FinishReason.Name(last.finish_reason))
        check(last.HasField("usage"), "the last message has no usage")
        check(last.usage.prompt_tokens == len(prompt_ids), "usage %s" % last.usage)
        check(last.usage.completion_tokens == len(greedy_ids), "usage %s" % last.usage)
        check(last.HasField("timings") and last.timings.time_to_first_token_ms > 0,
              "timings %s" % last.timings)
        # The server's text leaves out special tokens (ChatML markers here).
        text = "".join(m.text for m in messages)
        expected_text = re.sub(r"<\|im_(start|end)\|>", "", reference["greedy_text"])
        check(text == expected_text, "text %r differs from the reference %r" % (text, expected_text))

        try:
            list(stub.Generate(pb.GenerateRequest(model="nope", text="hi"), timeout=30))
            raise AssertionError("an unknown model did not fail")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.NOT_FOUND, "unknown model: %s" % e.code())
        channel.close()
        check_cli(client, address, reference)
    except BaseException:
        server.stop(signal.SIGKILL)
        sys.stderr.write("server stderr:\n" + "".join(server.log))
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
    with tempfile.TemporaryDirectory(prefix="cohost-pystubs-") as stubs:
        generate_stubs(stubs)
        sys.path.insert(0, stubs)
        start = time.time()
        run(args.cohost, args.client or args.cohost, args.model)
    print("client_test: OK (%.1f s)" % (time.time() - start))


if __name__ == "__main__":
    main()
