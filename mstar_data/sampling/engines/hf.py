"""The `hf` engine: transformers generate() on CPU or GPU, with one seed per row.

We sample with the Gumbel-max trick inside a logits processor and let generate() run greedy: argmax of
(logits / T + Gumbel noise) is a sample from softmax(logits / T). Each row's noise is a counter-based hash
of (row seed, decoding position, vocabulary index), computed with integer tensor ops on the logits' device:
no per-row loop, no host copy and no host sync per step. A rollout's noise therefore depends only on its own
seed, never on which batch it ran in (whether its *logits* do is a matter of numerics: docs/sampling.md).
The processor also records the sampled tokens' log-probs (under the temperature-scaled distribution) on the
device and hands them to the host once, at the end.
"""

from __future__ import annotations

import hashlib
import os

from mstar_data.errors import MstarError
from mstar_data.sampling.engine import Completion, SampleRequest

M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15          # splitmix64's increment (2^64 / phi)
_C1, _C2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB  # splitmix64's finaliser multipliers
_POS_SALT = 0x632BE59BD9B4E019
_U_BITS = 23                          # uniforms (k + 0.5) / 2^23: exact in float32, never 0 or 1


def _s64(c: int) -> int:
    """A 64-bit constant as the signed int64 torch holds (int64 arithmetic wraps modulo 2^64)."""
    return c - (1 << 64) if c >= 1 << 63 else c


def _shr(x, k: int):
    """Logical right shift of int64 values (torch's >> is arithmetic on negatives): mask the sign copies."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def mix64(x):
    """splitmix64's finaliser (a bijection of 64-bit words) on an int64 tensor; every step wraps modulo 2^64."""
    x = x ^ _shr(x, 30)
    x = x * _s64(_C1)
    x = x ^ _shr(x, 27)
    x = x * _s64(_C2)
    return x ^ _shr(x, 31)


def mix64_int(x: int) -> int:
    """mix64 on a Python int (the reference the tensor version is tested against, and the position's mix)."""
    x &= M64
    x ^= x >> 30
    x = (x * _C1) & M64
    x ^= x >> 27
    x = (x * _C2) & M64
    return x ^ (x >> 31)


def row_keys(seeds, pos: int):
    """One 64-bit key per row for decoding position `pos` (int64 [B, 1] in, int64 [B, 1] out): for a fixed
    position a bijection of the seed. The position is mixed on the host as a Python scalar operand, so no
    tensor is copied to the device per step."""
    return mix64(seeds ^ _s64(mix64_int(pos * _GOLDEN + _POS_SALT)))


def counters(vocab: int, device=None):
    """c * golden (mod 2^64) for the ceil(vocab / 2) hash counters c: each 64-bit hash gives two tokens' noise."""
    import torch

    return torch.arange((vocab + 1) // 2, dtype=torch.int64, device=device) * _s64(_GOLDEN)


def hashed_uniforms(seeds, pos: int, vocab: int, ctr=None, work=None):
    """Uniforms in (0, 1), one per (row, vocabulary index), exact in float32: (k + 0.5) / 2^23.

    With H = ceil(vocab / 2) and h(c) = mix64(row key + c * golden), token v < H takes the top 23 bits of h(v)
    and token H + v bits 9..31 of h(v) (both halves of splitmix64's output are full quality). seeds: int64
    [B, 1]; ctr: `counters(vocab)` (made here if not given); work: two int64 [B, H] buffers reused across
    steps (allocating them every step is a large share of the cost on a CPU)."""
    import torch

    if ctr is None:
        ctr = counters(vocab, seeds.device)
    half = ctr.shape[0]
    x, t = work if work is not None else [torch.empty(seeds.shape[0], half, dtype=torch.int64, device=seeds.device)
                                          for _ in range(2)]
    torch.add(row_keys(seeds, pos), ctr, out=x)   # [B, H]; then mix64 in place, t holding x >>> k
    for shift, mult in ((30, _C1), (27, _C2), (31, None)):
        torch.bitwise_right_shift(x, shift, out=t)
        x.bitwise_xor_(t.bitwise_and_((1 << (64 - shift)) - 1))
        if mult is not None:
            x.mul_(_s64(mult))
    u = torch.empty(seeds.shape[0], vocab, dtype=torch.float32, device=seeds.device)
    mask = (1 << _U_BITS) - 1
    u[:, :half].copy_(torch.bitwise_right_shift(x, 64 - _U_BITS, out=t).bitwise_and_(mask))
    u[:, half:].copy_(torch.bitwise_right_shift(x, 32 - _U_BITS, out=t).bitwise_and_(mask)[:, :vocab - half])
    return u.add_(0.5).mul_(1.0 / (1 << _U_BITS))


def seed_tensor(seeds: list[int], device=None):
    import torch

    return torch.tensor([_s64(int(s) & M64) for s in seeds], dtype=torch.int64, device=device).unsqueeze(1)


class RowSeededSampler:
    """A transformers LogitsProcessor (duck-typed): per-row seeds and temperatures; T = 0 is greedy.

    Called once per generated token; its call count is the decoding position. Log-probs stay on the device
    until `logprobs` is read (one stack and one copy for the whole generation)."""

    def __init__(self, seeds: list[int], temperatures: list[float]):
        import torch

        temps = [max(float(x), 0.0) for x in temperatures]
        self._seeds = seed_tensor(seeds)
        self._any_greedy = any(t <= 0 for t in temps)
        self._all_unit = all(t == 1.0 for t in temps)
        self._greedy = torch.tensor([t <= 0 for t in temps]).unsqueeze(1)
        self._temps = torch.tensor([t if t > 0 else 1.0 for t in temps], dtype=torch.float32).unsqueeze(1)
        self._device = None
        self._ctr = self._work = None
        self.pos = 0
        self._steps: list = []
        self._logprobs: list[list[float]] | None = None

    def _to(self, device, vocab: int) -> None:
        import torch

        if self._device != device:
            self._seeds, self._greedy, self._temps = (t.to(device) for t in (self._seeds, self._greedy, self._temps))
            self._device = device
        half = (vocab + 1) // 2
        if self._ctr is None or self._ctr.shape[0] != half or self._ctr.device != device:
            self._ctr = counters(vocab, device)
            self._work = tuple(torch.empty(self._seeds.shape[0], half, dtype=torch.int64, device=device)
                               for _ in range(2))

    def __call__(self, input_ids, scores):
        import torch

        self._to(scores.device, scores.shape[-1])
        scaled = scores.float() if self._all_unit else scores.float() / self._temps
        u = hashed_uniforms(self._seeds, self.pos, scores.shape[-1], self._ctr, self._work)
        gumbel = u.log_().neg_().log_().neg_()
        if self._any_greedy:
            gumbel.masked_fill_(self._greedy, 0.0)
        perturbed = gumbel.add_(scaled)
        chosen = perturbed.argmax(-1, keepdim=True)
        # log softmax(scaled) at the chosen token, without a [B, V] output
        self._steps.append((scaled.gather(1, chosen) - torch.logsumexp(scaled, -1, keepdim=True)).squeeze(1))
        self.pos += 1
        self._logprobs = None
        return perturbed

    @property
    def logprobs(self) -> list[list[float]]:
        """Per row, the log-prob of each sampled token (one host copy, cached)."""
        import torch

        if self._logprobs is None:
            n = self._seeds.shape[0]
            self._logprobs = torch.stack(self._steps, 1).tolist() if self._steps else [[] for _ in range(n)]
        return self._logprobs


def batch_key(keys: list[str]) -> str:
    """The hash part of `rollouts.batch_key` ("<hash>/<position>"): the ordered request keys of one engine
    call. Rows sharing the hash were sampled in the same call, and the positions order them, so the exact
    batch (its neighbours set the padding, its shape the GPU numerics) can be rebuilt from the store."""
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]


def set_deterministic() -> None:
    """torch's deterministic settings (process-wide): deterministic algorithms (warn where torch has none),
    no cuDNN autotuning, no TF32 and no reduced-precision reductions. CUBLAS_WORKSPACE_CONFIG only takes
    effect if set before cuBLAS starts, so call this before the model loads."""
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False


class HFEngine:
    name = "hf"

    def __init__(self, policy: str, *, device: str | None = None, dtype: str | None = None,
                 trust_remote_code: bool = False, policy_obj=None, deterministic: bool = False):
        """`deterministic`: fp32 weights and logits, and torch's deterministic settings (set_deterministic)."""
        from mstar_data.models.loading import load_policy

        self.deterministic = bool(deterministic)
        if self.deterministic:
            set_deterministic()
            dtype = "fp32"
        self.policy = policy_obj or load_policy(policy, device=device, dtype=dtype,
                                                trust_remote_code=trust_remote_code)
        self.policy_tag = str(policy)
        self.suppress = self.policy.suppress_ids()
        self.dtype = str(getattr(self.policy.model, "dtype", "")).replace("torch.", "") or None

    def generate(self, requests: list[SampleRequest]) -> list[Completion]:
        import torch
        from transformers import LogitsProcessorList

        from mstar_data.models.loading import encode_prompts

        if not requests:
            return []
        pol = self.policy
        tok = pol.tokenizer
        enc = encode_prompts(pol, [r.prompt for r in requests], [r.image for r in requests],
                             [r.prefix for r in requests] if any(r.prefix for r in requests) else None)
        sampler = RowSeededSampler([r.seed for r in requests], [r.temperature for r in requests])
        max_new = max(r.max_new_tokens for r in requests)
        with torch.no_grad():
            out = pol.model.generate(**enc, do_sample=False, max_new_tokens=max_new,
                                     logits_processor=LogitsProcessorList([sampler]),
                                     suppress_tokens=self.suppress or None, pad_token_id=tok.pad_token_id,
                                     eos_token_id=tok.eos_token_id)
        gen = out[:, enc["input_ids"].shape[1]:].cpu()
        logprobs = sampler.logprobs
        eos = tok.eos_token_id
        bkey = batch_key([r.key for r in requests])
        completions = []
        for i, r in enumerate(requests):
            ids = gen[i].tolist()[: r.max_new_tokens]
            if eos in ids:
                n, reason = ids.index(eos) + 1, "stop"
            else:
                n, reason = len(ids), "length"
            text = tok.decode(ids[:n], skip_special_tokens=True)
            completions.append(Completion(text, n, reason, logprobs[i][:n], ids[:n], engine=self.name,
                                          dtype=self.dtype, deterministic=self.deterministic,
                                          batch_key=f"{bkey}/{i}"))
        return completions

    def update_weights(self, named_parameters) -> None:
        """Copy the trainer's new weights into this engine's model in place (a Ray actor sampling for GRPO).
        Every parameter must be named the same; each is cast to the engine's dtype and device."""
        import torch

        params = dict(self.policy.model.named_parameters())
        with torch.no_grad():
            for name, t in named_parameters:
                if name not in params:
                    raise MstarError(f"update_weights: the engine's model has no parameter '{name}'")
                params[name].copy_(getattr(t, "data", t))

    def release(self) -> None:
        self.policy = None
        from mstar_data.sampling.engines import free_device_memory

        free_device_memory()
