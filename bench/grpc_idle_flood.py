#!/usr/bin/env python3
"""Idle connections at the plaintext gRPC port's cap, then a real client.

Opens N connections to 127.0.0.1:PORT that send HTTP/2's client preface and
an empty SETTINGS frame (so the listener hands them to gRPC) and then nothing,
waits WAIT seconds, and times how long a grpcio channel takes to become ready.
Prints how many of the idle connections the server closed.

Usage (a server with --grpc-max-connections N on PORT; grpcio installed, as in
the test venv):
  python3 bench/grpc_idle_flood.py PORT N WAIT
"""
import socket
import sys
import time

import grpc

# The preface, then an empty SETTINGS frame.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def main():
    port, n, wait = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(PREFACE)
        socks.append(s)
    print("held", len(socks), flush=True)
    time.sleep(wait)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    start = time.time()
    try:
        grpc.channel_ready_future(channel).result(timeout=30)
        print("channel ready after %.2f s" % (time.time() - start), flush=True)
    except grpc.FutureTimeoutError:
        print("channel not ready after 30 s", flush=True)
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            while True:
                if s.recv(65536) == b"":
                    closed += 1
                    break
        except BlockingIOError:
            pass
        except ConnectionResetError:
            closed += 1
    print("idle connections closed by the server:", closed)


if __name__ == "__main__":
    main()
