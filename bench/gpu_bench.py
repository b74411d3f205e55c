"""One command for a lent GPU (< 5 minutes): sampling, training, PRM scoring and reproducibility figures.

    python bench/gpu_bench.py                       # cuda: the tiny default and a ~150M Qwen2-VL config
    python bench/gpu_bench.py --device cpu --quick  # the suite's smoke run (tiny model, small shapes)

Models are built from configs (no downloads): the tiny default (mstar_data/models/tiny.py) and a ~150M
Qwen2-VL (text width 768, 6 layers, Qwen2's 151,936-token vocabulary, the tiny model's tokenizer and
processor). For each it measures
- sampling tokens/s: our engine (greedy generate + the per-row hashed Gumbel noise) against raw
  `model.generate(do_sample=True)` on the same batch, and the logits processor alone at a real vocabulary;
- trainer steps/s and tokens/s (mstar_data.train.Trainer, SFT, bf16 autocast on GPU) and the MFU:
  6 x parameters x tokens/s / the accelerator's dense bf16 peak;
- PRM scoring throughput (mstar_data.prm.format.step_scores: responses/s and steps/s);
- reproducibility: rows sampled alone against the same rows inside a larger batch, in the default dtype and
  under --deterministic (fp32 + torch's deterministic settings), and what --deterministic costs per token.
It prints the figures and ratios; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12}  # dense, no sparsity


def peak_flops(device: str) -> float | None:
    import torch

    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def build_150m(out: Path) -> Path:
    """A ~150M-parameter Qwen2-VL built from a config, with the tiny model's tokenizer and processor."""
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    from mstar_data.models.loading import load_processor

    from mstar_data.models.tiny import PATCH, build_tiny_policy

    build_tiny_policy(out)  # writes the tokenizer and processor (and a tiny model, replaced below)
    proc = load_processor(out)
    tok = proc.tokenizer
    ids = tok.convert_tokens_to_ids
    hidden, heads = 768, 12
    head_dim = hidden // heads
    cfg = Qwen2VLConfig(
        vision_config=dict(depth=4, embed_dim=256, num_heads=4, mlp_ratio=4, hidden_act="quick_gelu", in_channels=3,
                           patch_size=PATCH, spatial_merge_size=2, temporal_patch_size=2, hidden_size=hidden),
        text_config=dict(vocab_size=151_936, hidden_size=hidden, intermediate_size=2048, num_hidden_layers=6,
                         num_attention_heads=heads, num_key_value_heads=2, max_position_embeddings=2048,
                         rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                             "mrope_section": [head_dim // 8, 3 * head_dim // 16,
                                                                               3 * head_dim // 16]},
                         bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True)
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(cfg).eval()
    gc = model.generation_config
    gc.eos_token_id, gc.pad_token_id, gc.bos_token_id = tok.eos_token_id, tok.pad_token_id, None
    model.save_pretrained(out)
    return out


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())  # tied embeddings count once: the LM head's matmul


def sampling(engine, batch: int, new_tokens: int, repeats: int, vocab: int, device: str) -> dict:
    from sample_bench import decode_times, processor_times

    t = decode_times(engine, batch, new_tokens, repeats, modes=("raw", "ours"))
    p = processor_times(batch, vocab, device, steps=3, repeats=1 if repeats == 1 else 2)
    return {"ours_tok_s": round(1 / t["ours"]), "raw_tok_s": round(1 / t["raw"]),
            "ours_over_raw_time": round(t["ours"] / t["raw"], 3),
            "proc_ms": {k: round(v * 1e3, 2) for k, v in p.items()}}


def examples(n: int):
    from mstar_data.tasks.shapes import make_example

    return [make_example(5, i) for i in range(n)]


def training(path: str, device: str, batch: int, steps: int) -> dict:
    import torch

    from mstar_data.models.batches import SFTExample, sft_batch
    from mstar_data.train.trainer import TrainConfig, Trainer

    tr = Trainer()
    tr.setup(path, TrainConfig(lr=1e-4, warmup_steps=0, batch_size=batch), horizon=None, device=device, seed=0)
    exs = [SFTExample(e.question, e.image_png, e.cot) for e in examples(batch)]
    tokens = int(sft_batch(tr.policy, exs)["attention_mask"].sum())  # every token the step runs through
    tr.step([exs])  # warm-up (allocator, kernels)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    losses = [tr.step([exs])["loss"] for _ in range(steps)]  # .item() inside step syncs each step
    dt = (time.perf_counter() - t0) / steps
    n = n_params(tr.model)
    peak = peak_flops(device)
    out = {"params": n, "seqs_per_step": batch, "steps_s": round(1 / dt, 2), "tokens_s": round(tokens / dt),
           "mfu": round(6 * n * tokens / dt / peak, 4) if peak else None, "loss_first_last": [losses[0], losses[-1]]}
    tr.close()
    return out


def prm_scoring(engine, batch: int, repeats: int) -> dict:
    """The PRM's forward pass (step_scores) on the policy model: the same compute as a trained PRM's."""
    from mstar_data.prm.format import PRMExample, step_scores
    from mstar_data.steps import split_steps

    exs = [PRMExample(e.question, e.image_png, split_steps(e.cot)) for e in examples(batch)]
    n_steps = sum(len(e.steps) for e in exs)
    step_scores(engine.policy, exs)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        step_scores(engine.policy, exs)  # .tolist() at the end syncs
        best = min(best, time.perf_counter() - t0)
    return {"responses_s": round(batch / best, 1), "steps_s": round(n_steps / best, 1)}


def reproducibility(engine, n_rows: int, batch: int, new_tokens: int) -> dict:
    """n_rows requests sampled alone and at the front of a batch of `batch` (fillers after them)."""
    from mstar_data.sampling.engine import SampleRequest

    exs = examples(batch)
    reqs = [SampleRequest(f"r{i}", e.question, e.image_png, 1.0, 1000 + i, new_tokens) for i, e in enumerate(exs)]
    batched = engine.generate(reqs)
    same = sum(engine.generate([r])[0].token_ids == batched[i].token_ids for i, r in enumerate(reqs[:n_rows]))
    return {"alone_eq_batched": f"{same}/{n_rows}", "batch": batch, "dtype": engine.dtype}


def run_model(name: str, path: str, args, out: dict) -> None:
    from sample_bench import decode_times, restore_flags, torch_flags

    from mstar_data.sampling.engines.hf import HFEngine

    q = args.quick
    flags = torch_flags()
    eng = HFEngine(path, device=args.device)
    r = out[name] = {"dtype": eng.dtype, "params": n_params(eng.policy.model)}
    t0 = time.perf_counter()
    r["sampling"] = sampling(eng, 8 if q else 256, 8 if q else 96, 1 if q else 2, 8_192 if q else 151_936,
                             args.device)
    r["prm"] = prm_scoring(eng, 8 if q else 64, 1 if q else 3)
    rows, batch, tokens = (3, 6, 8) if q else (8, 64, 48)
    r["repro"] = reproducibility(eng, rows, batch, tokens)
    det = HFEngine(path, device=args.device, deterministic=True)  # fp32 weights; turns the settings on
    r["repro_deterministic"] = reproducibility(det, rows, batch, tokens)
    t = decode_times(eng, batch, tokens, 1 if q else 2, modes=("ours", "det"), engines={"det": det}, flags=flags)
    r["deterministic_cost"] = round(t["det"] / t["ours"], 3)
    det.release()
    eng.release()
    restore_flags(flags)
    r["train"] = training(path, args.device, 4 if q else 32, 2 if q else 10)
    r["seconds"] = round(time.perf_counter() - t0, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default=None, help="cuda (default when there is one) or cpu.")
    ap.add_argument("--quick", action="store_true", help="The tiny model only, small shapes (the suite's run).")
    ap.add_argument("--tiny-policy", default=None, help="A tiny-default policy folder to use (default: build one).")
    args = ap.parse_args()
    # --deterministic's cuBLAS setting only counts if set before cuBLAS starts: here, before any model loads
    # (it constrains cuBLAS's workspace for the default runs too).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    from mstar_data.models.tiny import build_tiny_policy

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    out: dict = {"device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
                 "torch": torch.__version__, "quick": args.quick,
                 "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}
    with tempfile.TemporaryDirectory() as tmp:
        tiny = args.tiny_policy or f"{tmp}/tiny"
        if args.tiny_policy is None:
            build_tiny_policy(tiny)
        run_model("tiny", tiny, args, out)
        if not args.quick:
            run_model("150m", str(build_150m(Path(tmp) / "m150")), args, out)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    for name in ("tiny", "150m"):
        if name in out:
            r = out[name]
            s = r["sampling"]
            print(f"{name:>5} ({r['params'] / 1e6:.1f}M, {r['dtype']}): sampling ours {s['ours_tok_s']} tok/s, raw "
                  f"{s['raw_tok_s']} tok/s, ours/raw time {s['ours_over_raw_time']}x; processor ms/step "
                  f"{s['proc_ms']}")
            print(f"       train {r['train']['steps_s']} steps/s, {r['train']['tokens_s']} tok/s, MFU "
                  f"{r['train']['mfu']}; PRM {r['prm']['responses_s']} responses/s; alone == batched "
                  f"{r['repro']['alone_eq_batched']}"
                  + (f", deterministic {r['repro_deterministic']['alone_eq_batched']} at "
                     f"{r['deterministic_cost']}x the time per token" if "repro_deterministic" in r else ""))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
