"""A checkout of an original implementation outside the repository, and the adapter and stack that use it."""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from implementations import Adapter
from implementations.common import check_input

ROOT = Path(__file__).resolve().parents[2]


def originals_dir() -> Path:
    """Where the originals' checkouts live: $KANBENCH_ORIGINALS, or originals/ next to the repository."""
    return Path(os.environ.get("KANBENCH_ORIGINALS") or ROOT.parent / "originals")


class MissingCheckout(ImportError):
    """The original's checkout is not where the adapter looks for it."""


@dataclass(frozen=True)
class Checkout:
    """One original: its repository, the commit read, the directory name under originals_dir() and its module file."""

    url: str
    commit: str
    dirname: str
    module_file: str

    @property
    def path(self) -> Path:
        """The checkout directory (it need not exist)."""
        return originals_dir() / self.dirname

    def clone_hint(self) -> str:
        """The commands that create the checkout."""
        return f"git clone {self.url} {self.path} && git -C {self.path} checkout {self.commit}"

    def missing(self) -> str:
        """Why the checkout cannot be used, or "" when its module file is there."""
        if (self.path / self.module_file).is_file():
            return ""
        return f"the original's checkout {self.path / self.module_file} is missing: {self.clone_hint()}"

    def load(self) -> ModuleType:
        """The original's module, imported from its file under a private name (never from sys.path)."""
        if why := self.missing():
            raise MissingCheckout(why)
        name = f"kanbench_original_{self.dirname.lower()}"
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, self.path / self.module_file)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules[name] = module
        return sys.modules[name]


@dataclass(frozen=True)
class OriginalAdapter(Adapter):
    """An Adapter that is available only where the original's checkout is (the run then records a skip)."""

    checkout: Checkout | None = field(default=None)

    def available(self) -> tuple[bool, str]:
        """(False, the clone command) without the checkout; else the usual check of `requires`."""
        if self.checkout is not None and (why := self.checkout.missing()):
            return False, why
        return super().available()


class OriginalStack(nn.Module):
    """The original's layers in sequence on (..., in) input; column=True feeds them (rows, in, 1) as ReLU-KAN wants.

    Each layer gets the in_features and num_basis attributes kanbench reads off a model (the originals name them
    otherwise); nothing else of the original is changed. input_dtype_default=True runs the layers with torch's
    default dtype set to the input's, for an original that makes its tensors in the default dtype (a no-op in
    float32).
    """

    def __init__(
        self, layers: list[nn.Module], widths: list[int], num_basis: int, column: bool = False,
        input_dtype_default: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.widths, self.column, self.input_dtype_default = widths, column, input_dtype_default
        for layer, i in zip(self.layers, widths):
            vars(layer).update(in_features=i, num_basis=num_basis)  # plain attributes, as nn.Module sets ints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.widths[0], f"{type(self.layers[0]).__name__} stack {self.widths}")
        lead = x.shape[:-1]
        x = x.reshape(-1, self.widths[0])  # the originals take (rows, in) and flatten anything else themselves
        if self.column:
            x = x.unsqueeze(-1)
        default = torch.get_default_dtype()
        switch = self.input_dtype_default and x.dtype != default and x.dtype.is_floating_point
        if switch:
            torch.set_default_dtype(x.dtype)
        try:
            for layer in self.layers:
                x = layer(x)
        finally:
            if switch:
                torch.set_default_dtype(default)
        return x.reshape(*lead, self.widths[-1])
