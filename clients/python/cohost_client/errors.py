"""Typed errors: each carries the gRPC code, the server's message and, for
RESOURCE_EXHAUSTED, how long the server asked the client to wait."""

import grpc


class CohostError(Exception):
    """A call the server refused or could not finish."""

    def __init__(self, code, message, retry_after_ms=None):
        super().__init__("%s: %s" % (code.name, message))
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms


class InvalidArgument(CohostError):
    pass


class NotFound(CohostError):
    pass


class ResourceExhausted(CohostError):
    """The model's queue is full, its tenant is over a budget, or its first token
    could not meet the model's TTFT target; retry after `retry_after_ms`."""


class Unauthenticated(CohostError):
    pass


class PermissionDenied(CohostError):
    pass


class Unavailable(CohostError):
    pass


class DeadlineExceeded(CohostError):
    pass


class FailedPrecondition(CohostError):
    pass


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
}


def from_rpc_error(error, trailers=None):
    """The typed error for a grpc.RpcError (sync or aio)."""
    code = error.code()
    retry = None
    for key, value in (trailers if trailers is not None else error.trailing_metadata()) or ():
        if key == "grpc-retry-pushback-ms":
            try:
                retry = int(value)
            except ValueError:
                pass
    return _BY_CODE.get(code, CohostError)(code, error.details() or "", retry)
