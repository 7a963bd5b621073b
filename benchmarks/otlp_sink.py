"""A minimal OTLP/gRPC trace collector for benchmarks: accepts every export, counts the
spans, and on SIGTERM or SIGINT prints ``spans=N requests=M`` and exits.

    .venv/bin/python benchmarks/otlp_sink.py --port 4317 &
    OMNIROUTE_TRACE_EXPORTER=otlp OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 \\
        .venv/bin/omniroute serve

``bench_routing.py --traces`` starts one beside the server by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class Sink(trace_service_pb2_grpc.TraceServiceServicer):
    """Counts what it is sent, keeps nothing."""

    def __init__(self) -> None:
        self.spans = 0
        self.requests = 0

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.requests += 1
        self.spans += sum(
            len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
        )
        return trace_service_pb2.ExportTraceServiceResponse()


async def serve(host: str, port: int) -> Sink:
    """Serve until SIGTERM or SIGINT; the sink with its counts."""
    sink = Sink()
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)  # type: ignore[no-untyped-call]
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    print(f"listening={host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)
    return sink


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sink; print the counts at the end."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4317)
    ns = p.parse_args(argv)
    sink = asyncio.run(serve(ns.host, ns.port))
    print(f"spans={sink.spans} requests={sink.requests}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
