"""The blocking client."""

from typing import Iterator, List, Optional

import grpc

from . import _common
from .errors import from_rpc_error
from .v1 import inference_pb2 as pb
from .v1 import inference_pb2_grpc as pb_grpc


class Client:
    """cohost's gRPC API.

    Client("127.0.0.1:50051", api_key=..., root_certificates=open("ca.pem", "rb").read())
    """

    def __init__(self, address: str, api_key: Optional[str] = None, tenant: Optional[str] = None,
                 root_certificates: Optional[bytes] = None, private_key: Optional[bytes] = None,
                 certificate_chain: Optional[bytes] = None, timeout: Optional[float] = None):
        creds = _common.channel_credentials(root_certificates, private_key, certificate_chain)
        self._channel = (grpc.secure_channel(address, creds) if creds
                         else grpc.insecure_channel(address))
        self._stub = pb_grpc.InferenceStub(self._channel)
        self._metadata = _common.call_metadata(api_key, tenant)
        self._timeout = timeout

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def generate(self, model: str, **kwargs) -> Iterator[_common.Chunk]:
        """Streams the generation: text deltas, then a last chunk with
        finish_reason, usage and timings. Arguments: one of prompt, messages
        ([{"role", "content"}]) or tokens, then max_tokens, temperature,
        top_p, top_k, min_p, seed, penalties, stop, ignore_eos, and
        logprobs=N for each token's log-probability and N alternatives."""
        request = _common.build_request(model, **kwargs)
        call = self._stub.Generate(request, metadata=self._metadata, timeout=self._timeout)
        try:
            for message in call:
                yield _common.to_chunk(message)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            call.cancel()  # a consumer that stops early frees the server's memory

    def list_models(self) -> List[_common.ModelInfo]:
        try:
            resp = self._stub.ListModels(pb.ListModelsRequest(), metadata=self._metadata,
                                         timeout=self._timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return [_common.to_model(m) for m in resp.models]

    def load_model(self, name: str, path: str) -> _common.ModelInfo:
        try:
            resp = self._stub.LoadModel(pb.LoadModelRequest(name=name, path=path),
                                        metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return _common.to_model(resp.model)

    def unload_model(self, name: str) -> None:
        try:
            self._stub.UnloadModel(pb.UnloadModelRequest(name=name), metadata=self._metadata,
                                   timeout=self._timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
