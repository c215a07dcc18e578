"""Load on novum-serve: N concurrent client streams (N = 1, 4, 16), each sending the demo clip.

Starts a real tritonserver through ``novum.runtime.serve`` on 127.0.0.1 (free ports), frames the
demo clip once, and per round and N runs N client processes that each send every frame of the
clip, one request at a time (closed loop, like ``novum-run --server``), starting at its own offset
into the clip so that concurrent requests carry different frames. Rounds interleave N = 1, 4, 16
on the shared machine; the table gives medians over rounds.

Measured: server throughput (frames answered / wall time from the common start to the last
answer), client latency p50 / p99 per request, and the batch sizes Triton formed (the model's
``batch_stats`` from the statistics endpoint, before vs after each run). Checked per run: every
stream got exactly one answer per frame it sent (nothing lost or duplicated, request ids echoed),
and every answer's scores equal local ONNX Runtime's for the frame that stream sent (max abs error
<= 1e-5) and are nearer to it than to any other frame's (so an answer given to the wrong stream or
frame would be caught).

    python benchmarks/triton_load.py [--streams 1 4 16] [--rounds 3] [--protocol grpc] [--out results/triton_load_cpu]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
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


def stream_loop(url: str, protocol: str, model: str, frames: np.ndarray, stream: int, offset: int, n: int,
                start) -> dict:
    """One client stream: frames offset, offset+1, ... (wrapping), one request at a time."""
    if protocol == "grpc":
        import tritonclient.grpc as tc
    else:
        import tritonclient.http as tc
    client = tc.InferenceServerClient(url)
    names = ["scores", "vertex", "vertex_score"]
    total = len(frames)
    sent, got_ids, scores, lat = [], [], [], []
    start.wait()
    t_first = time.perf_counter()
    for k in range(n):
        i = (offset + k) % total
        x = np.ascontiguousarray(frames[i:i + 1])
        inp = tc.InferInput("images", list(x.shape), "UINT8")
        inp.set_data_from_numpy(x)
        t0 = time.perf_counter()
        r = client.infer(model, [inp], outputs=[tc.InferRequestedOutput(nm) for nm in names],
                         request_id=f"s{stream}-k{k}-f{i}")
        lat.append(time.perf_counter() - t0)
        resp = r.get_response(as_json=True) if protocol == "grpc" else r.get_response()
        got_ids.append(resp.get("id", ""))
        sent.append(i)
        scores.append(r.as_numpy("scores")[0])
    t_last = time.perf_counter()
    client.close()
    return {"sent": np.array(sent), "ids": np.array(got_ids), "scores": np.stack(scores), "lat": np.array(lat),
            "t": np.array([t_first, t_last])}


def stream_process(url, protocol, model, frames_path, stream, offset, n, start, out_path) -> None:
    """A stream in its own process (``--clients processes``); results go to an .npz file."""
    frames = np.load(frames_path, mmap_mode="r")
    np.savez(out_path, **stream_loop(url, protocol, model, frames, stream, offset, n, start))


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


def run_streams(server, protocol: str, frames_path: Path, ref: np.ndarray, n_streams: int, n_frames: int,
                work: Path, clients: str = "threads") -> dict:
    url = server.grpc_url.split("://")[1] if protocol == "grpc" else server.http_url
    total = len(ref)
    before = model_stats(server.http_url, server.name)
    spids = server_pids(server.proc.pid)
    cpu0 = (cpu_seconds(spids), time.process_time())
    offsets = [(s * total) // n_streams for s in range(n_streams)]
    if clients == "processes":
        ctx = mp.get_context("spawn")
        start = ctx.Barrier(n_streams)
        outs = [work / f"s{n_streams}_{s}.npz" for s in range(n_streams)]
        procs = [ctx.Process(target=stream_process, args=(url, protocol, server.name, str(frames_path), s, offsets[s],
                                                          n_frames, start, str(outs[s]))) for s in range(n_streams)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(600)
            if p.exitcode != 0:
                raise SystemExit(f"a client stream failed (exit code {p.exitcode})")
        res = [dict(np.load(o)) for o in outs]
    else:
        frames = np.load(frames_path)
        start = threading.Barrier(n_streams)
        res = [None] * n_streams

        def one(s: int) -> None:
            res[s] = stream_loop(url, protocol, server.name, frames, s, offsets[s], n_frames, start)

        threads = [threading.Thread(target=one, args=(s,)) for s in range(n_streams)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        if any(r is None for r in res):
            raise SystemExit("a client stream failed")
    after = model_stats(server.http_url, server.name)
    cpu1 = (cpu_seconds(spids), time.process_time())
    t0 = min(float(r["t"][0]) for r in res)
    t1 = max(float(r["t"][1]) for r in res)
    lat = np.concatenate([r["lat"] for r in res]) * 1000
    # integrity: one answer per frame sent, ids echoed, scores = local ORT of that frame and of no other
    lost = dup = wrong = 0
    max_err = 0.0
    for s, r in enumerate(res):
        expected = [(((s * total) // n_streams) + k) % total for k in range(n_frames)]
        ids = [str(v) for v in r["ids"]]
        want_ids = [f"s{s}-k{k}-f{i}" for k, i in enumerate(expected)]
        lost += len(set(want_ids) - set(ids))
        dup += len(ids) - len(set(ids))
        for i, row in zip(r["sent"], r["scores"]):
            d = np.abs(ref - row).max(axis=1)
            max_err = max(max_err, float(d[i]))
            if d[i] > ATOL or int(np.argmin(d)) != int(i) and d[np.argmin(d)] < d[i]:
                wrong += 1
    batches = {b: after["batches"].get(b, 0) - before["batches"].get(b, 0) for b in after["batches"]}
    batches = {b: c for b, c in sorted(batches.items()) if c}
    inf = after["inference_count"] - before["inference_count"]
    exe = after["execution_count"] - before["execution_count"]
    frames = sum(len(r["sent"]) for r in res)
    infer_ms = (after["infer_ns"] - before["infer_ns"]) / 1e6
    return {"streams": n_streams, "frames": frames, "seconds": t1 - t0, "fps": frames / (t1 - t0),
            "server_ms_per_frame": infer_ms / inf if inf else 0.0,
            "server_cpu_ms_per_frame": (cpu1[0] - cpu0[0]) * 1000 / frames,
            "client_cpu_ms_per_frame": (cpu1[1] - cpu0[1]) * 1000 / frames if clients == "threads" else float("nan"),
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "server_inferences": inf, "executions": exe, "mean_batch": inf / exe if exe else 0.0,
            "batch_sizes": batches, "lost": lost, "duplicated": dup, "wrong": wrong, "max_abs_err": max_err}


def framed_clip(input_size) -> np.ndarray:
    from novum.contracts.framing import Framer
    from novum.runtime.sources import open_source

    framer = Framer(input_size)
    with open_source("demo") as src:
        return np.stack([framer(f.image)[0] for f in src])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help=".onnx (default: the bundled demo model, exported once to a temporary folder)")
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, help="frames per stream (default: the whole clip)")
    ap.add_argument("--protocol", choices=["grpc", "http"], default="grpc")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("--queue-delay-us", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads in the server (0 = its default)")
    ap.add_argument("--clients", choices=["threads", "processes"], default="threads",
                    help="streams as threads of this process (default; light on a 2-core machine) or one process each")
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
    gaps = [float(np.abs(ref - ref[i]).max(axis=1)[np.arange(len(ref)) != i].min()) for i in range(len(ref))]
    frames_path = work / "frames.npy"
    np.save(frames_path, frames)
    n_frames = args.frames or len(frames)
    opts = ServeOptions(http_port=0, grpc_port=0, metrics_port=0, max_batch=args.max_batch, instances=args.instances,
                        queue_delay_us=args.queue_delay_us, threads=args.threads)
    load_before = os.getloadavg()
    rows = []
    with TritonServer(model, opts) as server:
        print(f"server: {server.describe}", flush=True)
        run_streams(server, args.protocol, frames_path, ref, 1, 20, work, args.clients)   # warm-up
        for r in range(args.rounds):
            for n in args.streams:
                row = run_streams(server, args.protocol, frames_path, ref, n, n_frames, work, args.clients)
                row["round"] = r
                rows.append(row)
                print(f"round {r} N={n:2d}: {row['fps']:6.1f} frames/s, p50 {row['p50_ms']:.1f} ms, p99 "
                      f"{row['p99_ms']:.1f} ms, model {row['server_ms_per_frame']:.2f} ms/frame, cpu server "
                      f"{row['server_cpu_ms_per_frame']:.1f} client {row['client_cpu_ms_per_frame']:.1f} ms/frame, "
                      f"mean batch {row['mean_batch']:.2f} {row['batch_sizes']}, lost "
                      f"{row['lost']} dup {row['duplicated']} wrong {row['wrong']}", flush=True)
    load_after = os.getloadavg()
    summary = []
    for n in args.streams:
        rs = [x for x in rows if x["streams"] == n]
        hist: dict[int, int] = {}
        for x in rs:
            for b, c in x["batch_sizes"].items():
                hist[b] = hist.get(b, 0) + c
        summary.append({"streams": n, "fps": float(np.median([x["fps"] for x in rs])),
                        "p50_ms": float(np.median([x["p50_ms"] for x in rs])),
                        "p99_ms": float(np.median([x["p99_ms"] for x in rs])),
                        "mean_batch": float(np.mean([x["mean_batch"] for x in rs])), "batch_sizes": hist,
                        "server_ms_per_frame": float(np.median([x["server_ms_per_frame"] for x in rs])),
                        "server_cpu_ms_per_frame": float(np.median([x["server_cpu_ms_per_frame"] for x in rs])),
                        "client_cpu_ms_per_frame": float(np.median([x["client_cpu_ms_per_frame"] for x in rs])),
                        "frames": sum(x["frames"] for x in rs), "lost": sum(x["lost"] for x in rs),
                        "duplicated": sum(x["duplicated"] for x in rs), "wrong": sum(x["wrong"] for x in rs),
                        "max_abs_err": max(x["max_abs_err"] for x in rs)})
    base = summary[0]["fps"]
    per_round = {n: [x["fps"] / y["fps"] for x, y in zip([x for x in rows if x["streams"] == n],
                                                         [x for x in rows if x["streams"] == args.streams[0]])]
                 for n in args.streams}
    lines = [f"# Triton load: novum-serve, {model.name}, {args.protocol}, {n_frames} frames per stream, "
             f"{args.rounds} rounds (N interleaved)", "",
             f"- server: {server.describe}; ONNX Runtime threads {args.threads or 'default'}",
             f"- machine: {cpu_flags()}; Python {platform.python_version()}; shared with other work "
             f"(load average {load_before[0]:.1f} before, {load_after[0]:.1f} after)",
             f"- clients: {'one process' if args.clients == 'processes' else 'one thread (own client)'} per stream, "
             f"closed loop (next frame sent after the answer), all outputs requested",
             f"- integrity reference: local ONNX Runtime, batch 1; frames of the clip differ from each other by at "
             f"least {min(gaps):.2e} in max |score| (tolerance {ATOL:g})", "",
             "| streams | throughput (frames/s, median) | vs 1 stream (median; per round) | p50 latency (ms) | "
             "p99 latency (ms) | mean batch | model time per frame (ms) | server / client CPU per frame (ms) | "
             "batch sizes Triton formed (size: count) | frames | lost | duplicated | wrong stream/frame | max abs err |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for s in summary:
        hist = ", ".join(f"{b}: {c}" for b, c in sorted(s["batch_sizes"].items()))
        ratios = ", ".join(f"{v:.2f}" for v in per_round[s["streams"]])
        lines.append(f"| {s['streams']} | {s['fps']:.1f} | {s['fps'] / base:.2f}x ({ratios}) | {s['p50_ms']:.1f} | "
                     f"{s['p99_ms']:.1f} | {s['mean_batch']:.2f} | {s['server_ms_per_frame']:.2f} | "
                     f"{s['server_cpu_ms_per_frame']:.1f} / {s['client_cpu_ms_per_frame']:.1f} | {hist} | {s['frames']} | {s['lost']} | "
                     f"{s['duplicated']} | {s['wrong']} | {s['max_abs_err']:.1e} |")
    lines += ["", "Model time per frame: Triton's compute_infer time (the Python backend's execute: batching the "
              "requests, ONNX Runtime, splitting the answers) divided by the frames it answered.", "", "Command: `python benchmarks/triton_load.py " + " ".join(argv if argv is not None else sys.argv[1:])
              + "`"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).with_suffix(".md").write_text(text)
        Path(args.out).with_suffix(".json").write_text(json.dumps({"summary": summary, "rounds": rows}, indent=1) + "\n")
    ok = all(s["lost"] == s["duplicated"] == s["wrong"] == 0 for s in summary)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
