"""Generates the gRPC stubs from the repository's proto when the package is
built (pip install clients/python), so the package always matches the API."""

import os

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PROTO = os.path.join(PROTO_ROOT, "cohost", "v1", "inference.proto")
OUT = os.path.join(HERE, "cohost_client", "v1")


def generate():
    if not os.path.exists(PROTO):
        raise RuntimeError("cohost-client is built from the cohost repository: %s is missing"
                           % PROTO)
    import shutil
    import tempfile

    from grpc_tools import protoc

    os.makedirs(OUT, exist_ok=True)
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    # Compiled under its own name, cohost/v1/inference.proto (the server's, as
    # reflection shows it), so that it cannot clash with another package's
    # inference.proto in the same process; then moved to cohost_client/v1/
    # with the one import between the two modules made relative, so the
    # package does not need cohost/ on sys.path.
    with tempfile.TemporaryDirectory() as tmp:
        code = protoc.main(["protoc", "-I" + PROTO_ROOT, "-I" + include, "--python_out=" + tmp,
                            "--grpc_python_out=" + tmp, PROTO])
        if code != 0:
            raise RuntimeError("protoc failed on %s" % PROTO)
        for name in ("inference_pb2.py", "inference_pb2_grpc.py"):
            shutil.copy(os.path.join(tmp, "cohost", "v1", name), os.path.join(OUT, name))
    grpc_file = os.path.join(OUT, "inference_pb2_grpc.py")
    with open(grpc_file) as f:
        text = f.read()
    absolute = "from cohost.v1 import inference_pb2 as"
    if absolute not in text:
        raise RuntimeError("grpcio-tools wrote %s without '%s': the import to make relative "
                           "moved" % (grpc_file, absolute))
    text = text.replace(absolute, "from . import inference_pb2 as")
    with open(grpc_file, "w") as f:
        f.write(text)
    open(os.path.join(OUT, "__init__.py"), "w").close()


def runtime_requirements():
    """The generated stubs need a grpcio and a protobuf at least as new as the
    ones that made them."""
    from importlib.metadata import version

    tools = version("grpcio-tools")
    proto = ".".join(version("protobuf").split(".")[:2])
    return ["grpcio>=%s" % tools, "protobuf>=%s" % proto]


# Every build step (metadata included) needs the generated package present.
generate()
setup(install_requires=runtime_requirements())
