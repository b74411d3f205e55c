"""Sampling throughput on this machine, and the share of sampler wall time spent writing to the store.

Runs `run_generate` (the code path of `mstar generate`) with the hf backend on the embedded task, then the
same requests through the sampler alone (the baseline: no judging, no store). Prints the figures; the last
line is JSON with rollouts_per_s, tokens_per_s, store_share and overhead (generate wall / sampler-only wall).

    python bench/sample_bench.py --queries 100 --n 4

`--vs-generate` instead times decoding per token: our engine's generate call (the per-row hashed Gumbel
noise) against raw `model.generate(do_sample=True)` on the same inputs, and against the sampler this
replaced (per-row torch.Generator noise on the host, `.tolist()` every step; kept below only for this
comparison), and what `--deterministic` costs. It also times the logits processors alone at a real vocabulary
(Qwen2's 151,936). Modes are interleaved, best of --repeats.

    python bench/sample_bench.py --vs-generate --batch-size 64 --max-new-tokens 48
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--policy", default=None, help="A policy folder; default: a fresh tiny model.")
    ap.add_argument("--vs-generate", action="store_true", help="Per-token time: ours vs raw generate.")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--vocab", type=int, default=151_936, help="--vs-generate: vocabulary of the processor timing.")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.vs_generate:
        return vs_generate_main(args)

    from mstar_data.ingest.synthetic import synthetic_items
    from mstar_data.ingest.writer import ingest_items
    from mstar_data.inputs import images_by_sha, select_queries
    from mstar_data.models.tiny import build_tiny_policy
    from mstar_data.prompts import build_prompt
    from mstar_data.store import Store
    from mstar_data.sampling.engine import SampleRequest
    from mstar_data.sampling.engines.hf import HFEngine
    from mstar_data.sampling.generate import GenerateConfig, run_generate

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"{tmp}/store")
        ingest_items(store, synthetic_items(int(args.queries / 0.7) + 2, 1, "easy", 0.2), source="bench",
                     dataset="synthetic", split="train")
        policy = args.policy or f"{tmp}/policy"
        if args.policy is None:
            build_tiny_policy(policy)
        sampler = HFEngine(policy)
        cfg = GenerateConfig(policy=policy, n=args.n, limit=args.queries, run="bench", temperature=1.0,
                             max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, flush_rows=256)
        sampler.generate([SampleRequest("warm", "warm up", build_tiny_image(), 1.0, 0, 4)])  # first-call costs
        r = run_generate(store, cfg, engine=sampler)

        queries = select_queries(store, split="train", limit=args.queries)
        images = images_by_sha(store, {q["image_sha256"] for q in queries})
        reqs = [SampleRequest(f"{q['query_id']}/{k}", build_prompt(q["question"]), images[q["image_sha256"]], 1.0,
                              k, args.max_new_tokens) for q in queries for k in range(args.n)]
        t0 = time.perf_counter()
        for i in range(0, len(reqs), args.batch_size):
            sampler.generate(reqs[i:i + args.batch_size])
        base_s = time.perf_counter() - t0
    result = {"rollouts": r.written, "wall_s": round(r.wall_s, 2), "rollouts_per_s": round(r.written / r.wall_s, 1),
              "tokens_per_s": round(r.n_tokens / r.wall_s), "store_s": round(r.store_s, 3),
              "store_share": round(r.store_s / r.wall_s, 4), "sampler_only_s": round(base_s, 2),
              "overhead": round(r.wall_s / base_s, 3)}
    for k, v in result.items():
        print(f"{k:>16}: {v}")
    print(json.dumps(result))


class LegacyRowSeededSampler:
    """The sampler before issue #15 (a copy, for the comparison only): per-row torch.Generator noise drawn on
    the host and copied to the logits' device, and a host sync (`.tolist()`) every step."""

    def __init__(self, seeds, temperatures):
        import torch

        self.gens = [torch.Generator().manual_seed(int(s) % (2**63)) for s in seeds]
        self.temps = torch.tensor([max(float(t), 0.0) for t in temperatures])
        self.logprobs = [[] for _ in seeds]

    def __call__(self, input_ids, scores):
        import torch

        scores = scores.float()
        greedy = self.temps <= 0
        temps = torch.where(greedy, torch.ones_like(self.temps), self.temps).to(scores.device).unsqueeze(1)
        scaled = scores / temps
        u = torch.stack([torch.rand(scores.shape[-1], generator=g) for g in self.gens]).to(scores.device)
        gumbel = -torch.log(-torch.log(u.clamp_(1e-20, 1.0)))
        gumbel[greedy.to(scores.device)] = 0.0
        perturbed = scaled + gumbel
        chosen = perturbed.argmax(-1)
        lp = torch.log_softmax(scaled, -1).gather(1, chosen.unsqueeze(1)).squeeze(1).tolist()
        for row, v in enumerate(lp):
            self.logprobs[row].append(v)
        return perturbed


def _sync(device: str) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def torch_flags() -> dict:
    """torch's settings that set_deterministic changes (process-wide), to put back afterwards."""
    import torch

    b = torch.backends
    return {"det": torch.are_deterministic_algorithms_enabled(), "cudnn_det": b.cudnn.deterministic,
            "cudnn_bench": b.cudnn.benchmark, "cudnn_tf32": b.cudnn.allow_tf32, "mm_tf32": b.cuda.matmul.allow_tf32,
            "fp16_red": b.cuda.matmul.allow_fp16_reduced_precision_reduction,
            "bf16_red": b.cuda.matmul.allow_bf16_reduced_precision_reduction}


def restore_flags(f: dict) -> None:
    import torch

    b = torch.backends
    torch.use_deterministic_algorithms(f["det"])
    b.cudnn.deterministic, b.cudnn.benchmark, b.cudnn.allow_tf32 = f["cudnn_det"], f["cudnn_bench"], f["cudnn_tf32"]
    b.cuda.matmul.allow_tf32 = f["mm_tf32"]
    b.cuda.matmul.allow_fp16_reduced_precision_reduction = f["fp16_red"]
    b.cuda.matmul.allow_bf16_reduced_precision_reduction = f["bf16_red"]


def decode_times(engine, batch: int, new_tokens: int, repeats: int = 3, modes=("raw", "ours", "legacy"),
                 engines: dict | None = None, flags: dict | None = None) -> dict:
    """Seconds per generated token (wall / (batch x new_tokens)) of each mode on the same left-padded batch,
    every row forced to `new_tokens` (min_new_tokens): raw = generate(do_sample=True), ours = the engine's
    call (greedy generate + RowSeededSampler), legacy = the same with the old sampler, det = ours on
    `engines["det"]` (a --deterministic engine; `flags`, from torch_flags() before it was made, are what the
    other modes run under, and what is left set at the end). Modes are interleaved and each keeps its best of
    `repeats` after a warm-up round (the order rotating), so load from other processes hits them alike."""
    from mstar_data.models.loading import encode_prompts
    from mstar_data.sampling.engines.hf import set_deterministic
    from mstar_data.tasks.shapes import make_example

    engines = {"default": engine, **(engines or {})}
    base = {**torch_flags(), "det": False}
    exs = [make_example(3, i) for i in range(batch)]
    encs = {k: encode_prompts(e.policy, [x.question for x in exs], [x.image_png for x in exs])
            for k, e in engines.items()}
    best = {m: float("inf") for m in modes}
    for rep in range(repeats + 1):  # round 0 warms up; the order rotates so no mode always runs first
        for mode in modes[rep % len(modes):] + modes[:rep % len(modes)]:
            eng = engines["det" if mode == "det" else "default"]
            if "det" in engines:  # the deterministic settings are process-wide: on for det only
                set_deterministic() if mode == "det" else restore_flags(flags or base)
            dt = _time_generate(eng, encs["det" if mode == "det" else "default"], mode, batch, new_tokens, rep)
            if rep:
                best[mode] = min(best[mode], dt)
    if "det" in engines:
        restore_flags(flags or base)
    return {m: v / (batch * new_tokens) for m, v in best.items()}


def _time_generate(engine, enc, mode: str, batch: int, new_tokens: int, seed: int) -> float:
    import torch
    from transformers import LogitsProcessorList

    from mstar_data.sampling.engines.hf import RowSeededSampler

    pol, tok = engine.policy, engine.policy.tokenizer
    common = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, suppress_tokens=engine.suppress or None,
                  pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    sampler = None
    if mode == "raw":
        kw = dict(do_sample=True, top_k=0, top_p=1.0, temperature=1.0)
    else:
        cls = LegacyRowSeededSampler if mode == "legacy" else RowSeededSampler
        sampler = cls(list(range(batch)), [1.0] * batch)
        kw = dict(do_sample=False, logits_processor=LogitsProcessorList([sampler]))
    _sync(pol.device)
    t0 = time.perf_counter()
    with torch.no_grad():
        gen = pol.model.generate(**enc, **common, **kw)
    if sampler is not None:
        sampler.logprobs  # the host copy of the log-probs is part of the cost
    _sync(pol.device)
    dt = time.perf_counter() - t0
    assert gen.shape[1] - enc["input_ids"].shape[1] == new_tokens
    return dt


def processor_times(batch: int, vocab: int, device: str, steps: int = 3, repeats: int = 3) -> dict:
    """Seconds per decoding step of the logits processors alone at [batch, vocab] fp32 logits (each sampler
    made once, then called step after step as generate does), against softmax + torch.multinomial (what
    generate(do_sample=True) does per step). Interleaved, best of `repeats`."""
    import torch

    from mstar_data.sampling.engines.hf import RowSeededSampler

    scores = torch.randn(batch, vocab, device=device)
    ours, legacy = (cls(list(range(batch)), [1.0] * batch) for cls in (RowSeededSampler, LegacyRowSeededSampler))
    fns = {"multinomial": lambda: torch.multinomial(torch.softmax(scores, -1), 1),
           "ours": lambda: ours(None, scores), "legacy": lambda: legacy(None, scores)}
    best = {k: float("inf") for k in fns}
    for rep in range(repeats + 1):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(1 if rep == 0 else steps):
                fn()
            _sync(device)
            if rep:
                best[name] = min(best[name], (time.perf_counter() - t0) / steps)
    return best


def vs_generate_main(args) -> None:
    from mstar_data.models.tiny import build_tiny_policy
    from mstar_data.sampling.engines.hf import HFEngine

    with tempfile.TemporaryDirectory() as tmp:
        policy = args.policy or f"{tmp}/policy"
        if args.policy is None:
            build_tiny_policy(policy)
        flags = torch_flags()
        engine = HFEngine(policy, device=args.device)
        det = HFEngine(policy, device=args.device, deterministic=True)
        t = decode_times(engine, args.batch_size, args.max_new_tokens, args.repeats,
                         modes=("raw", "ours", "legacy", "det"), engines={"det": det}, flags=flags)
    p = processor_times(args.batch_size, args.vocab, args.device, repeats=args.repeats)
    result = {"batch": args.batch_size, "new_tokens": args.max_new_tokens, "device": args.device,
              **{f"{k}_us_per_token": round(v * 1e6, 2) for k, v in t.items()},
              "ours_over_raw": round(t["ours"] / t["raw"], 3), "legacy_over_raw": round(t["legacy"] / t["raw"], 3),
              "ours_over_legacy": round(t["ours"] / t["legacy"], 3),
              "deterministic_cost": round(t["det"] / t["ours"], 3), "vocab": args.vocab,
              **{f"proc_{k}_ms_per_step": round(v * 1e3, 2) for k, v in p.items()},
              "proc_ours_over_legacy": round(p["ours"] / p["legacy"], 3)}
    for k, v in result.items():
        print(f"{k:>26}: {v}")
    print(json.dumps(result))


def build_tiny_image() -> bytes:
    from mstar_data.tasks.shapes import make_example

    return make_example(0, 0).image_png


if __name__ == "__main__":
    main()
