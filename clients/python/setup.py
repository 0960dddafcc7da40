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
    from grpc_tools import protoc

    os.makedirs(OUT, exist_ok=True)
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    # Generated as cohost_client/v1/inference_pb2*.py: import paths are
    # rewritten below so the package does not need cohost/ on sys.path.
    code = protoc.main(["protoc", "-I" + os.path.join(PROTO_ROOT, "cohost", "v1"), "-I" + include,
                        "--python_out=" + OUT, "--grpc_python_out=" + OUT, PROTO])
    if code != 0:
        raise RuntimeError("protoc failed on %s" % PROTO)
    grpc_file = os.path.join(OUT, "inference_pb2_grpc.py")
    with open(grpc_file) as f:
        text = f.read()
    text = text.replace("import inference_pb2 as", "from . import inference_pb2 as")
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
