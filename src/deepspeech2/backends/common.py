"""What both backends do the same way, whatever their framework: the checkpoint shape check, which
parameters ``train.freeze`` keeps fixed, and which optimizer ``train.optimizer`` names."""

from __future__ import annotations

from ..config import TrainConfig


class CheckpointMismatch(ValueError):
    """A checkpoint whose parameters do not fit the configured network."""

    def __init__(self, path: str, missing: list[str], unexpected: list[str], misshaped: list[str]):
        parts = [f"{path} does not fit the configured network:"]
        for title, names in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if names:
                shown = ", ".join(names[:12]) + (f" … (+{len(names) - 12})" if len(names) > 12 else "")
                parts.append(f"  {title} ({len(names)}): {shown}")
        super().__init__("\n".join(parts))


def check_parameter_shapes(path: str, expected: dict[str, tuple], found: dict[str, tuple]) -> None:
    """Raise CheckpointMismatch unless ``found`` has exactly the names and shapes of ``expected``."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    misshaped = [f"{k} {tuple(found[k])} vs {tuple(shape)}" for k, shape in expected.items()
                 if k in found and tuple(found[k]) != tuple(shape)]
    if missing or unexpected or misshaped:
        raise CheckpointMismatch(path, missing, unexpected, misshaped)


def frozen_parameters(names: list[str], prefixes: list[str]) -> list[str]:
    """The parameter names ``train.freeze`` keeps fixed: those starting with one of ``prefixes``.
    ValueError, listing the layers, when a prefix matches no parameter."""
    frozen = [n for n in names if any(n.startswith(x) for x in prefixes)]
    unknown = [x for x in prefixes if not any(n.startswith(x) for n in frozen)]
    if unknown:
        layers = sorted({n.rsplit(".", 1)[0] for n in names})
        raise ValueError(f"train.freeze: {unknown} match no parameter; layers are: {', '.join(layers)}")
    return frozen


def optimizer_choice(t: TrainConfig) -> tuple[str, dict]:
    """(``adam`` | ``adamw`` | ``sgd``, the keyword arguments besides the parameters and learning rate)
    that each backend passes to its framework's optimizer of that name. SGD is Nesterov momentum."""
    if t.optimizer == "adam":
        return "adam", {"weight_decay": t.weight_decay}
    if t.optimizer == "adamw":
        return "adamw", {"weight_decay": t.weight_decay}
    return "sgd", {"momentum": t.momentum, "nesterov": True, "weight_decay": t.weight_decay}
