"""The server's metrics interceptor on a real in-process grpc server: every call counted
once by method and the status its caller got (a status set by the handler, an abort, an
error the mapping turns into a status, an unmapped exception, a stream), timed, and in
flight while it runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from idgraph.core.errors import NotFoundError
from idgraph.service.interceptors import ErrorMappingInterceptor
from idgraph.service.metrics import MetricsInterceptor, ServerMetrics, split_method

STEP = 0.5  # the fake clock's advance per reading: each call lasts one step


class Rig:
    def __init__(self) -> None:
        self.metrics = ServerMetrics()
        self.readings = 0
        self.lock = threading.Lock()
        self.in_flight_seen: list[float] = []

    def clock(self) -> float:
        with self.lock:
            self.readings += 1
            return 100.0 + STEP * self.readings

    def value(self, name: str, **labels: str) -> float:
        found = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def calls(self, method: str, code: str, service: str = "idgraph.test.T") -> float:
        return self.value("idgraph_grpc_requests_total", service=service, method=method,
                          code=code)


@pytest.fixture
def rig() -> Iterator[tuple[Rig, grpc.Channel]]:
    rig = Rig()

    def ok(request: bytes, context: grpc.ServicerContext) -> bytes:
        rig.in_flight_seen.append(rig.value("idgraph_grpc_requests_in_flight",
                                            service="idgraph.test.T", method="Ok"))
        return b"ok"

    def missing(request: bytes, context: grpc.ServicerContext) -> bytes:
        raise NotFoundError("no profile for email:jane@example.com")

    def refused(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.set_code(grpc.StatusCode.FAILED_PRECONDITION)
        context.set_details("consent withdrawn")
        return b""

    def aborting(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad identifier")
        return b""

    def numbers(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield b"1"
        yield b"2"
        if request == b"fail":
            raise RuntimeError("jane@example.com")

    def plain(request: bytes, context: grpc.ServicerContext) -> bytes:
        raise KeyError("jane@example.com")

    ours = {
        "Ok": grpc.unary_unary_rpc_method_handler(ok),
        "Missing": grpc.unary_unary_rpc_method_handler(missing),
        "Refused": grpc.unary_unary_rpc_method_handler(refused),
        "Abort": grpc.unary_unary_rpc_method_handler(aborting),
        "Numbers": grpc.unary_stream_rpc_method_handler(numbers),
    }
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        interceptors=[MetricsInterceptor(rig.metrics, clock=rig.clock),
                      ErrorMappingInterceptor()])
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("idgraph.test.T", ours),
        # not this project's prefix: no error mapping, grpc answers UNKNOWN
        grpc.method_handlers_generic_handler(
            "other.T", {"Plain": grpc.unary_unary_rpc_method_handler(plain)}),
    ))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield rig, channel
    server.stop(None)


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code()


def test_every_call_is_counted_by_method_and_the_status_its_caller_got(rig):
    rig, channel = rig
    unary = channel.unary_unary
    for _ in range(3):
        assert unary("/idgraph.test.T/Ok")(b"", timeout=5) == b"ok"
    assert _code(lambda: unary("/idgraph.test.T/Missing")(b"", timeout=5)) \
        is grpc.StatusCode.NOT_FOUND
    assert _code(lambda: unary("/idgraph.test.T/Refused")(b"", timeout=5)) \
        is grpc.StatusCode.FAILED_PRECONDITION
    assert _code(lambda: unary("/idgraph.test.T/Abort")(b"", timeout=5)) \
        is grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: unary("/other.T/Plain")(b"", timeout=5)) is grpc.StatusCode.UNKNOWN
    stream = channel.unary_stream("/idgraph.test.T/Numbers")
    assert list(stream(b"", timeout=5)) == [b"1", b"2"]
    assert _code(lambda: list(stream(b"fail", timeout=5))) is grpc.StatusCode.INTERNAL
    assert _code(lambda: unary("/idgraph.test.T/NoSuchMethod")(b"", timeout=5)) \
        is grpc.StatusCode.UNIMPLEMENTED

    assert rig.calls("Ok", "OK") == 3
    assert rig.calls("Missing", "NOT_FOUND") == 1
    assert rig.calls("Refused", "FAILED_PRECONDITION") == 1
    assert rig.calls("Abort", "INVALID_ARGUMENT") == 1
    assert rig.calls("Plain", "UNKNOWN", service="other.T") == 1
    assert rig.calls("Numbers", "OK") == 1 and rig.calls("Numbers", "INTERNAL") == 1
    samples = [s for m in rig.metrics.registry.collect() for s in m.samples
               if s.name == "idgraph_grpc_requests_total"]
    assert sum(s.value for s in samples) == 9  # an unserved method is not counted
    assert {s.labels["method"] for s in samples} == {
        "Ok", "Missing", "Refused", "Abort", "Plain", "Numbers"}

    # each call lasted one step of the clock; none is in flight any more, Ok saw itself
    assert rig.value("idgraph_grpc_request_duration_seconds_count",
                     service="idgraph.test.T", method="Ok") == 3
    assert rig.value("idgraph_grpc_request_duration_seconds_sum",
                     service="idgraph.test.T", method="Ok") == 3 * STEP
    assert rig.value("idgraph_grpc_request_duration_seconds_sum",
                     service="idgraph.test.T", method="Numbers") == 2 * STEP
    assert rig.in_flight_seen == [1, 1, 1]
    for method in ("Ok", "Missing", "Refused", "Abort", "Numbers"):
        assert rig.value("idgraph_grpc_requests_in_flight", service="idgraph.test.T",
                         method=method) == 0
    text = "".join(str(s) for m in rig.metrics.registry.collect() for s in m.samples)
    assert "jane" not in text and "identifier" not in text


def test_a_method_name_splits_into_service_and_rpc():
    assert split_method("/idgraph.v1.ProfileService/Lookup") == (
        "idgraph.v1.ProfileService", "Lookup")
    assert split_method("/grpc.health.v1.Health/Check") == ("grpc.health.v1.Health", "Check")
