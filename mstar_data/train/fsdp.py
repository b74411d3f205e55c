"""FSDP2 (`fully_shard`): parameters, gradients and AdamW state sharded across the ranks, for models whose
fp32 weights and optimizer state do not fit one device (`mstar train --fsdp`, `mstar evolve --fsdp`).

Each transformer block (the model's `_no_split_modules`: decoder layers, vision blocks) is one FSDP unit and the
root holds the rest (embeddings, the tied head, norms). A unit's weights are all-gathered for its forward and
backward, and its gradients reduce-scattered: averaged over the ranks, as `ranks.average_gradients` does for the
data-parallel path, so the Trainer's loss scaling is the same and N sharded processes train as one process at
the same global batch (tests/e2e/test_torchrun.py, gloo on CPU). On GPU the units compute in bf16 and reduce
in fp32 (`MixedPrecisionPolicy`); the sharded master weights and optimizer state stay fp32.

Checkpoints do not depend on sharding: the model is gathered into one Hugging Face folder on rank 0 and the
optimizer state into the layout a one-process AdamW writes (indexed by trainable parameter), so a run may resume
under any number of processes, sharded or not. Every rank takes part in the gathers; only rank 0 writes.
"""

from __future__ import annotations


def block_classes(model) -> set[str]:
    """The class names of the model's transformer blocks: `_no_split_modules` of the model and its parts."""
    names: set[str] = set()
    for m in model.modules():
        names.update(getattr(m, "_no_split_modules", None) or ())
    return names


def shard(model) -> int:
    """Apply `fully_shard` to every block, then to the root (in place). Returns the number of units."""
    import warnings

    import torch
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    # FSDP warns that a unit returning a view loses its pre-backward hook if the view is changed in place.
    # Our losses read the outputs (loss, logits) out of place only; the parity test would catch a lost gather.
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")

    on_gpu = next(model.parameters()).is_cuda
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if on_gpu else MixedPrecisionPolicy()
    blocks = block_classes(model)
    units = [m for m in model.modules() if type(m).__name__ in blocks]
    for m in units:
        fully_shard(m, mp_policy=mp)
    fully_shard(model, mp_policy=mp)
    return len(units) + 1


def is_sharded(model) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_model_state(model) -> dict:
    """The whole model's weights on rank 0 (CPU tensors); {} on the other ranks. Collective. Tied weights (an
    LM head that is the embedding) are one tensor under both names, as in the model, so that save_pretrained
    writes them once."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state = get_model_state_dict(model, options=_options())
    first: dict[int, str] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        tied_to = first.setdefault(id(p), name)
        if tied_to != name and tied_to in state and name in state:
            state[name] = state[tied_to]
    return state


def _trainable_names(model) -> list[str]:
    # the order in which Trainer.setup handed the parameters to AdamW (index i of its state dict)
    return [n for n, p in model.named_parameters() if p.requires_grad]


def full_optimizer_state(model, optimizer) -> dict:
    """The optimizer's whole state on rank 0, in the layout `optimizer.state_dict()` has in one process
    (state and param_groups indexed by trainable parameter); {} on the other ranks. Collective."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    sd = get_optimizer_state_dict(model, optimizer, options=_options())
    if not sd:
        return {}
    index = {name: i for i, name in enumerate(_trainable_names(model))}
    return {"state": {index[k]: v for k, v in sd["state"].items()},
            "param_groups": [{**g, "params": [index[k] for k in g["params"]],
                              **({"betas": tuple(g["betas"])} if "betas" in g else {})}  # DCP makes it a list
                             for g in sd["param_groups"]]}


def load_optimizer_state(model, optimizer, state: dict) -> None:
    """Load a one-process optimizer state dict (every rank holds it whole) into the sharded optimizer."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    names = _trainable_names(model)
    by_name = {"state": {names[i]: v for i, v in state["state"].items()},
               "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]]}
    set_optimizer_state_dict(model, optimizer, by_name, options=_options())
