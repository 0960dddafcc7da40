"""The asyncio client (grpc.aio), with the same methods as Client."""

from typing import AsyncIterator, List, Optional

import grpc

from . import _common
from .errors import from_rpc_error
from .v1 import inference_pb2 as pb
from .v1 import inference_pb2_grpc as pb_grpc


class AsyncClient:
    def __init__(self, address: str, api_key: Optional[str] = None, tenant: Optional[str] = None,
                 root_certificates: Optional[bytes] = None, private_key: Optional[bytes] = None,
                 certificate_chain: Optional[bytes] = None, timeout: Optional[float] = None):
        creds = _common.channel_credentials(root_certificates, private_key, certificate_chain)
        self._channel = (grpc.aio.secure_channel(address, creds) if creds
                         else grpc.aio.insecure_channel(address))
        self._stub = pb_grpc.InferenceStub(self._channel)
        self._metadata = _common.call_metadata(api_key, tenant)
        self._timeout = timeout

    async def close(self):
        await self._channel.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def generate(self, model: str, **kwargs) -> AsyncIterator[_common.Chunk]:
        request = _common.build_request(model, **kwargs)
        call = self._stub.Generate(request, metadata=self._metadata, timeout=self._timeout)
        try:
            async for message in call:
                yield _common.to_chunk(message)
        except grpc.RpcError as e:
            raise from_rpc_error(e, await call.trailing_metadata()) from None
        finally:
            call.cancel()

    async def _unary(self, method, request):
        try:
            return await method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def list_models(self) -> List[_common.ModelInfo]:
        resp = await self._unary(self._stub.ListModels, pb.ListModelsRequest())
        return [_common.to_model(m) for m in resp.models]

    async def load_model(self, name: str, path: str) -> _common.ModelInfo:
        resp = await self._unary(self._stub.LoadModel, pb.LoadModelRequest(name=name, path=path))
        return _common.to_model(resp.model)

    async def unload_model(self, name: str) -> None:
        await self._unary(self._stub.UnloadModel, pb.UnloadModelRequest(name=name))
