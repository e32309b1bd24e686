"""google.rpc.Status bodies for refused requests, as both OTLP transports return them."""

from __future__ import annotations

from google.protobuf import any_pb2, duration_pb2, json_format
from google.rpc import error_details_pb2, status_pb2

from collector.errors import GRPC_CODE, IngestError


def retry_info(seconds: int) -> bytes:
    return error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=seconds)
    ).SerializeToString()


def status_message(error: IngestError) -> status_pb2.Status:
    status = status_pb2.Status(code=GRPC_CODE[error.kind].value[0], message=error.message)
    if error.retry_after is not None:
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.RetryInfo(
                retry_delay=duration_pb2.Duration(seconds=error.retry_after)
            )
        )
        status.details.append(detail)
    return status


def encode_status(error: IngestError, as_json: bool) -> tuple[bytes, str]:
    status = status_message(error)
    if as_json:
        return json_format.MessageToJson(status, indent=None).encode(), "application/json"
    return status.SerializeToString(), "application/x-protobuf"
