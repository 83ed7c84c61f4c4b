"""Reads the details Kith attaches to a failed gRPC call.

Every Kith error status carries a ``google.rpc.ErrorInfo`` (domain ``kith``,
reason one of the ``kith.v1.ErrorReason`` names) and, when request fields are
at fault, a ``google.rpc.BadRequest`` naming each field by its path
(``customer.email``, ``people[1].email``). They travel in the
``grpc-status-details-bin`` trailer; :func:`parse_error` decodes them.

    try:
        stub.CreateCustomer(request, metadata=auth)
    except grpc.RpcError as err:
        e = parse_error(err)
        if e.reason == "ERROR_REASON_INVALID_FIELD":
            print(e.field_paths)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

#: The ErrorInfo domain of every error Kith raises.
DOMAIN = "kith"


@dataclass(frozen=True)
class KithError:
    """What a failed call said, with its details decoded."""

    code: grpc.StatusCode
    message: str
    #: ErrorInfo.reason, such as ``ERROR_REASON_INVALID_FIELD``; None when
    #: the status carried no ErrorInfo (an error from the transport, say).
    reason: Optional[str] = None
    domain: Optional[str] = None
    metadata: Dict[str, str] = field(default_factory=dict)
    #: (field path, description) of each BadRequest field violation.
    violations: List[Tuple[str, str]] = field(default_factory=list)
    #: RetryInfo.retry_delay in seconds, when the server sent one.
    retry_delay: Optional[float] = None

    @property
    def field_paths(self) -> List[str]:
        """The paths of the offending fields, in the order the server gave."""
        return [path for path, _ in self.violations]


def parse_error(error: grpc.RpcError) -> KithError:
    """Decodes the status of a failed call made with a synchronous stub."""
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    message = error.details() if isinstance(error, grpc.Call) else str(error)
    reason = domain = None
    metadata: Dict[str, str] = {}
    violations: List[Tuple[str, str]] = []
    retry_delay = None

    status = None
    if isinstance(error, grpc.Call):
        try:
            status = rpc_status.from_call(error)
        except ValueError:
            # The trailer disagrees with the status line: ignore the details
            # rather than hide the error itself.
            status = None

    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, domain = info.reason, info.domain
                metadata = dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations.extend((v.field, v.description) for v in bad.field_violations)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                retry_delay = retry.retry_delay.ToTimedelta().total_seconds()

    return KithError(
        code=code,
        message=message or "",
        reason=reason,
        domain=domain,
        metadata=metadata,
        violations=violations,
        retry_delay=retry_delay,
    )


def reason(error: grpc.RpcError) -> Optional[str]:
    """The ErrorInfo reason of a failed call, or None."""
    return parse_error(error).reason


def field_paths(error: grpc.RpcError) -> List[str]:
    """The BadRequest field paths of a failed call (empty when none)."""
    return parse_error(error).field_paths
