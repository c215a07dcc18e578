"""Load on novum-serve: N concurrent client streams (N = 1, 4, 16) sending the demo clip.

Starts a real tritonserver through ``novum.runtime.serve`` on 127.0.0.1 (free ports) and frames the
demo clip once. Each stream is a thread of this process with its own gRPC client that sends one
frame at a time (closed loop, like ``novum-run --server``), all outputs requested, starting at its
own offset into the clip so that concurrent requests carry different frames.

1. Throughput: rounds of equal time slices, N = 1, 4, 16 interleaved in every round, so that the
   load other work puts on the shared machine falls on every N alike; each round gives the ratio of
   its N-stream slice to its 1-stream slice, and the table gives medians over rounds.
2. The whole clip: every stream sends every frame of the clip once, for each N.

Measured: server throughput (frames answered / wall time from the common start to the last
answer), client latency p50 / p99 per request, the batch sizes Triton formed (the model's
``batch_stats`` from the statistics endpoint, before vs after), the Python backend's time per frame
and the CPU time of server and clients per frame. Checked in every run: one answer per request
(request ids echoed; nothing lost or duplicated), and each answer's scores equal local ONNX
Runtime's for the frame that stream sent and are nearer to it than to any other frame's (an answer
given to the wrong stream or frame would be caught).

    python benchmarks/triton_load.py [--streams 1 4 16] [--rounds 8] [--seconds 6] [--out results/triton_load_cpu]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ATOL = 1e-5


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    keep = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile") if f in flags]
    return f"{model}, {os.cpu_count()} CPUs, flags: {' '.join(keep) or 'none of avx2/avx512'}"


def stream_loop(url: str, model: str, frames: np.ndarray, stream: int, offset: int, n: int | None,
                seconds: float | None, start: threading.Barrier) -> dict:
    """One client stream: frames offset, offset+1, ... (wrapping), one request at a time, for ``n``
    frames or until ``seconds`` have passed (the request in flight then still completes)."""
    import tritonclient.grpc as tc

    client = tc.InferenceServerClient(url)
    names = ["scores", "vertex", "vertex_score"]
    total = len(frames)
    sent, got_ids, scores, lat = [], [], [], []
    start.wait()
    t_first = time.perf_counter()
    deadline = t_first + seconds if seconds else None
    k = 0
    while (n is None or k < n) and (deadline is None or time.perf_counter() < deadline):
        i = (offset + k) % total
        inp = tc.InferInput("images", [1, *frames.shape[1:]], "UINT8")
        inp.set_data_from_numpy(frames[i:i + 1])
        t0 = time.perf_counter()
        r = client.infer(model, [inp], outputs=[tc.InferRequestedOutput(nm) for nm in names],
                         request_id=f"s{stream}-k{k}-f{i}")
        lat.append(time.perf_counter() - t0)
        got_ids.append(r.get_response(as_json=True).get("id", ""))
        sent.append(i)
        scores.append(r.as_numpy("scores")[0])
        k += 1
    t_last = time.perf_counter()
    client.close()
    return {"sent": np.array(sent, int), "ids": got_ids, "scores": np.array(scores), "lat": np.array(lat),
            "t": (t_first, t_last)}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def server_pids(root: int) -> list[int]:
    """tritonserver and its children (the Python-backend stubs)."""
    pids = [root]
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == root:
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


def model_stats(http_url: str, model: str) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{http_url}/v2/models/{model}/stats", timeout=10) as r:
        s = json.loads(r.read())["model_stats"][0]
    return {"inference_count": int(s["inference_count"]), "execution_count": int(s["execution_count"]),
            "batches": {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in s.get("batch_stats", [])},
            "infer_ns": sum(int(b["compute_infer"]["ns"]) for b in s.get("batch_stats", []))}


def run_streams(server, frames: np.ndarray, ref: np.ndarray, n_streams: int, n_frames: int | None = None,
                seconds: float | None = None) -> dict:
    url = server.grpc_url.split("://")[1]
    total = len(ref)
    offsets = [(s * total) // n_streams for s in range(n_streams)]
    before = model_stats(server.http_url, server.name)
    spids = server_pids(server.proc.pid)
    cpu0 = (cpu_seconds(spids), time.process_time())
    start = threading.Barrier(n_streams)
    res: list[dict | None] = [None] * n_streams
    errors: list[BaseException] = []

    def one(s: int) -> None:
        try:
            res[s] = stream_loop(url, server.name, frames, s, offsets[s], n_frames, seconds, start)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
            start.abort()

    threads = [threading.Thread(target=one, args=(s,)) for s in range(n_streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"a client stream failed: {errors[0]}")
    after = model_stats(server.http_url, server.name)
    cpu1 = (cpu_seconds(spids), time.process_time())
    t0 = min(r["t"][0] for r in res)
    t1 = max(r["t"][1] for r in res)
    lat = np.concatenate([r["lat"] for r in res]) * 1000
    lost = dup = wrong = 0
    max_err = 0.0
    for s, r in enumerate(res):
        want = [f"s{s}-k{k}-f{(offsets[s] + k) % total}" for k in range(len(r["sent"]))]
        lost += len(set(want) - set(r["ids"]))
        dup += len(r["ids"]) - len(set(r["ids"]))
        for i, row in zip(r["sent"], r["scores"]):
            d = np.abs(ref - row).max(axis=1)
            max_err = max(max_err, float(d[i]))
            if d[i] > ATOL or d.min() < d[i]:       # not this frame's answer, or nearer to another frame's
                wrong += 1
    batches = {b: after["batches"].get(b, 0) - before["batches"].get(b, 0) for b in after["batches"]}
    inf = after["inference_count"] - before["inference_count"]
    exe = after["execution_count"] - before["execution_count"]
    answered = sum(len(r["sent"]) for r in res)
    return {"streams": n_streams, "frames": answered, "seconds": t1 - t0, "fps": answered / (t1 - t0),
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "mean_batch": inf / exe if exe else 0.0, "batch_sizes": {b: c for b, c in sorted(batches.items()) if c},
            "model_ms_per_frame": (after["infer_ns"] - before["infer_ns"]) / 1e6 / inf if inf else 0.0,
            "server_cpu_ms_per_frame": (cpu1[0] - cpu0[0]) * 1000 / answered,
            "client_cpu_ms_per_frame": (cpu1[1] - cpu0[1]) * 1000 / answered,
            "lost": lost, "duplicated": dup, "wrong": wrong, "max_abs_err": max_err}


def framed_clip(input_size) -> np.ndarray:
    from novum.contracts.framing import Framer
    from novum.runtime.sources import open_source

    framer = Framer(input_size)
    with open_source("demo") as src:
        return np.stack([framer(f.image)[0] for f in src])


def summarize(rows: list[dict], n: int) -> dict:
    rs = [x for x in rows if x["streams"] == n]
    hist: dict[int, int] = {}
    for x in rs:
        for b, c in x["batch_sizes"].items():
            hist[b] = hist.get(b, 0) + c
    med = {k: float(np.median([x[k] for x in rs])) for k in
           ("fps", "p50_ms", "p99_ms", "model_ms_per_frame", "server_cpu_ms_per_frame", "client_cpu_ms_per_frame")}
    return {"streams": n, **med, "mean_batch": float(np.mean([x["mean_batch"] for x in rs])), "batch_sizes": hist,
            "frames": sum(x["frames"] for x in rs), "lost": sum(x["lost"] for x in rs),
            "duplicated": sum(x["duplicated"] for x in rs), "wrong": sum(x["wrong"] for x in rs),
            "max_abs_err": max(x["max_abs_err"] for x in rs)}


def table(summary: list[dict], ratios: dict[int, list[float]] | None) -> list[str]:
    head = ("| streams | throughput (frames/s) | vs 1 stream | p50 latency (ms) | p99 latency (ms) | mean batch | "
            "batch sizes Triton formed (size: count) | model time per frame (ms) | server / client CPU per frame (ms) "
            "| frames | lost | duplicated | wrong stream/frame | max abs err |")
    lines = [head, "|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    base = summary[0]["fps"]
    for s in summary:
        hist = ", ".join(f"{b}: {c}" for b, c in sorted(s["batch_sizes"].items()))
        if ratios is not None:
            rr = ratios[s["streams"]]
            vs = f"{np.median(rr):.2f}x (rounds: {', '.join(f'{v:.2f}' for v in rr)})"
        else:
            vs = f"{s['fps'] / base:.2f}x"
        lines.append(f"| {s['streams']} | {s['fps']:.1f} | {vs} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | "
                     f"{s['mean_batch']:.2f} | {hist} | {s['model_ms_per_frame']:.2f} | "
                     f"{s['server_cpu_ms_per_frame']:.1f} / {s['client_cpu_ms_per_frame']:.1f} | {s['frames']} | "
                     f"{s['lost']} | {s['duplicated']} | {s['wrong']} | {s['max_abs_err']:.1e} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help=".onnx (default: the bundled demo model, exported once to a temporary folder)")
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--rounds", type=int, default=8, help="interleaved throughput rounds (default 8)")
    ap.add_argument("--seconds", type=float, default=6.0, help="length of each time slice (default 6 s)")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("--queue-delay-us", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads in the server (0 = its default)")
    ap.add_argument("--out", help="write <out>.md and <out>.json")
    args = ap.parse_args(argv)

    from novum.runtime.backends import load
    from novum.runtime.serve.server import ServeOptions, TritonServer

    work = Path(tempfile.mkdtemp(prefix="novum-triton-load-"))
    model = Path(args.model) if args.model else None
    if model is None:
        from novum.bundled import demo_model_path
        from novum.checkpoint import load_model
        from novum.export.onnx import export_onnx

        model = export_onnx(load_model(demo_model_path()), work / "demo.onnx")
    with load(model, intra_op_threads=1) as be:
        frames = framed_clip(be.input_size)
        ref = np.concatenate([be.infer(frames[i:i + 1])["scores"] for i in range(len(frames))])
    gap = min(float(np.abs(ref - ref[i]).max(axis=1)[np.arange(len(ref)) != i].min()) for i in range(len(ref)))
    opts = ServeOptions(http_port=0, grpc_port=0, metrics_port=0, max_batch=args.max_batch, instances=args.instances,
                        queue_delay_us=args.queue_delay_us, threads=args.threads)
    load_before = os.getloadavg()
    timed, clip = [], []
    with TritonServer(model, opts) as server:
        print(f"server: {server.describe}", flush=True)
        run_streams(server, frames, ref, 1, n_frames=20)                      # warm-up
        for r in range(args.rounds):
            for n in args.streams:
                row = run_streams(server, frames, ref, n, seconds=args.seconds)
                row["round"] = r
                timed.append(row)
                print(f"round {r} N={n:2d}: {row['fps']:6.1f} frames/s, p50 {row['p50_ms']:.1f} ms, p99 "
                      f"{row['p99_ms']:.1f} ms, mean batch {row['mean_batch']:.2f}, model "
                      f"{row['model_ms_per_frame']:.2f} ms/frame, cpu server {row['server_cpu_ms_per_frame']:.1f} "
                      f"client {row['client_cpu_ms_per_frame']:.1f} ms/frame, lost {row['lost']} dup "
                      f"{row['duplicated']} wrong {row['wrong']}", flush=True)
        for n in args.streams:
            row = run_streams(server, frames, ref, n, n_frames=len(frames))
            clip.append(row)
            print(f"whole clip N={n:2d}: {row['frames']} frames, {row['fps']:.1f} frames/s, mean batch "
                  f"{row['mean_batch']:.2f}, lost {row['lost']} dup {row['duplicated']} wrong {row['wrong']}", flush=True)
    load_after = os.getloadavg()
    ratios = {n: [x["fps"] / y["fps"] for x, y in zip([x for x in timed if x["streams"] == n],
                                                      [x for x in timed if x["streams"] == args.streams[0]])]
              for n in args.streams}
    summary = [summarize(timed, n) for n in args.streams]
    whole = [summarize(clip, n) for n in args.streams]
    lines = [f"# Triton load: novum-serve, {model.name}, gRPC, streams {', '.join(map(str, args.streams))}", "",
             f"- server: {server.describe}; ONNX Runtime threads {args.threads or 'default'}",
             f"- machine: {cpu_flags()}; Python {platform.python_version()}; shared with other work (load average "
             f"{load_before[0]:.1f} before, {load_after[0]:.1f} after)",
             "- clients: one thread with its own gRPC client per stream, in this process; closed loop (the next frame "
             "is sent after the answer); all outputs requested",
             f"- checks: every answer equals local ONNX Runtime (batch 1) for the frame that stream sent (|err| <= "
             f"{ATOL:g}); the clip's frames differ from each other by at least {gap:.2e}, so a misrouted answer fails",
             "", f"## Throughput: {args.rounds} rounds of {args.seconds:g} s slices, N interleaved (medians; ratio per "
             f"round against that round's 1-stream slice)", ""]
    lines += table(summary, ratios)
    lines += ["", f"## The whole clip: each stream sends all {len(frames)} frames once", ""]
    lines += table(whole, None)
    lines += ["", "Model time per frame: Triton's compute_infer time (the Python backend's execute: checking and "
              "joining the requests, ONNX Runtime, splitting the answers) over the frames answered. CPU per frame: "
              "tritonserver and its stub processes / this process's client threads, over the frames answered.", "",
              "Command: `python benchmarks/triton_load.py " + " ".join(argv if argv is not None else sys.argv[1:]) + "`"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).with_suffix(".md").write_text(text)
        Path(args.out).with_suffix(".json").write_text(
            json.dumps({"throughput": summary, "whole_clip": whole, "ratios": ratios, "rounds": timed,
                        "clip_runs": clip}, indent=1, default=str) + "\n")
    ok = all(s["lost"] == s["duplicated"] == s["wrong"] == 0 for s in summary + whole)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
