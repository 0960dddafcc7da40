"""`cohost serve` as a child process for the Python tests: started on free
ports, its stderr collected on a thread, its ports read from the "listening
on" line, its /metrics readable, stopped with a signal."""

import re
import signal
import subprocess
import sys
import threading
import urllib.request

# "listening on HOST:PORT (metrics on HOST:M)[, OpenAI HTTP API on :P]..."
LISTENING = re.compile(r"listening on (\S+):(\d+) \(metrics on \S*:(\d+)\)"
                       r"(?:, OpenAI HTTP API on :(\d+))?")


def check(condition, message):
    if not condition:
        raise AssertionError(message)


class ServeProcess:
    def __init__(self, binary, *args):
        self.proc = subprocess.Popen(
            [binary, "serve", "--port", "0", "--metrics-port", "0"] + list(args),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log = []
        self.ports = None  # {"grpc", "metrics", "http" (when --http-port)}
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.log.append(line)
            m = LISTENING.search(line)
            if m and self.ports is None:
                self.ports = {"grpc": int(m.group(2)), "metrics": int(m.group(3))}
                if m.group(4):
                    self.ports["http"] = int(m.group(4))
                self.ready.set()
        self.ready.set()  # exited: wake the waiter

    def wait_ready(self, timeout=300):
        """The gRPC address, once the server listens."""
        self.ready.wait(timeout)
        check(self.ports is not None,
              "no 'listening on' line; stderr:\n" + "".join(self.log))
        return "127.0.0.1:%d" % self.ports["grpc"]

    def metric(self, name):
        """The value of metric line `name` (with its labels), or None."""
        url = "http://127.0.0.1:%d/metrics" % self.ports["metrics"]
        for line in urllib.request.urlopen(url, timeout=10).read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return None

    def dump_and_kill(self, label="server"):
        """After a failure: its stderr onto ours, and the server killed."""
        sys.stderr.write("%s stderr:\n%s" % (label, "".join(self.log)))
        self.stop(signal.SIGKILL)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Sends `sig` and returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("server did not exit within %d s of signal %d" % (timeout, sig))
