"""``novum-serve``: a real Triton Inference Server on this machine, serving one novum model.

Examples::

    novum-serve                                   # bundled demo model on 127.0.0.1:8000 (HTTP), 8001 (gRPC), 8002 (metrics)
    novum-serve --model demo.onnx --instances 2 --max-batch 16
    novum-serve --model model.engine              # TensorRT on a GPU instance
    novum-serve --host 0.0.0.0                    # reachable from other machines: see README, Serve with Triton

Clients: ``novum-run --server 127.0.0.1:8000 --source clip.mp4`` or any Triton client (tritonclient,
perf_analyzer). Ctrl-C or SIGTERM stops the server and its children.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from novum import api
from novum.cli_util import run_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="novum-serve", description=__doc__.replace("``", "").replace("::", ":"),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help=".onnx, .engine/.plan, or a .safetensors/.pth checkpoint (exported to ONNX once "
                                   "and cached); default: the bundled demo model")
    p.add_argument("--name", help="model name on the server (default: the model file's stem)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only). 0.0.0.0 listens on every "
                        "interface: anyone who can reach it can run inference, with no authentication or TLS")
    p.add_argument("--http-port", type=int, default=8000, help="HTTP/REST port (default 8000; 0 = any free port)")
    p.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default 8001; 0 = any free port)")
    p.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics port (default 8002; 0 = any free)")
    p.add_argument("--max-batch", type=int, help="Triton max_batch_size (default: the engine's profile maximum or the "
                                                 "ONNX export's --batch)")
    p.add_argument("--instances", type=int, default=1, help="model instances (default 1)")
    p.add_argument("--queue-delay-us", type=int, default=1000,
                   help="how long the dynamic batcher may hold a request to fill a batch (default 1000 us)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "tensorrt"],
                   help="ONNX Runtime provider (default auto: CPU instances on the CPU)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads per instance (0 = its default)")
    p.add_argument("--repository", help="write the generated model repository here and keep it (default: temporary)")
    p.add_argument("--verbose", action="store_true", help="print Triton's log")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from novum.runtime.serve.server import ServeError, ServeOptions, TritonServer

        if threading.current_thread() is threading.main_thread():
            # SIGTERM, and SIGINT also when started with it ignored (a background job of a script)
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            signal.signal(signal.SIGINT, signal.default_int_handler)
        opts = ServeOptions(host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
                            metrics_port=args.metrics_port, name=args.name, max_batch=args.max_batch,
                            instances=args.instances, queue_delay_us=args.queue_delay_us, device=args.device,
                            threads=args.threads, repository=Path(args.repository) if args.repository else None,
                            verbose=args.verbose)
        model, native = api.resolve_model(args.model)   # a checkpoint (default: the demo model) -> its cached ONNX
        if native is not None and not opts.name:
            opts.name = native.stem                      # named after the checkpoint, not its cache file
        server = TritonServer(model, opts)
        try:
            server.start()
            print(f"serving {server.describe}", file=sys.stderr)
            if not server.host.startswith("127."):   # before the ready line: whoever waits for it has seen this
                print(f"warning: listening on {server.host}: every machine that can reach it can send inference "
                      f"requests and read the metrics, with no authentication or TLS (README: Serve with Triton)",
                      file=sys.stderr, flush=True)
            print(f"HTTP {server.http_url}, gRPC {server.grpc_url}, metrics {server.metrics_url}; "
                  f"try: novum-run --server {server.http_url} --source demo; Ctrl-C stops", file=sys.stderr, flush=True)
            code = None
            while code is None:
                code = server.wait(timeout=0.5)
            raise ServeError(f"the server stopped on its own: {server.exit_reason()}")
        except KeyboardInterrupt:
            code = server.stop()
            print(f"stopped (tritonserver exit code {code})", file=sys.stderr)
            raise
        finally:
            server.stop()

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
