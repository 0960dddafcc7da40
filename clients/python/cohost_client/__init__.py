"""cohost-client: the cohost inference server's gRPC API from Python.

    from cohost_client import Client
    with Client("127.0.0.1:50051", api_key="...") as c:
        for chunk in c.generate("smol", messages=[{"role": "user", "content": "Hi"}]):
            print(chunk.text, end="", flush=True)
"""

from ._common import Chunk, Logprobs, ModelInfo, TokenLogprob, Timings, Usage, join_tool_calls
from .aio import AsyncClient
from .client import Client
from .errors import (CohostError, DeadlineExceeded, FailedPrecondition, InvalidArgument,
                     NotFound, PermissionDenied, ResourceExhausted, Unauthenticated, Unavailable)

__all__ = [
    "AsyncClient", "Chunk", "Client", "CohostError", "DeadlineExceeded", "FailedPrecondition",
    "InvalidArgument", "Logprobs", "ModelInfo", "NotFound", "PermissionDenied",
    "ResourceExhausted", "Timings", "TokenLogprob", "Unauthenticated", "Unavailable", "Usage",
    "join_tool_calls",
]
