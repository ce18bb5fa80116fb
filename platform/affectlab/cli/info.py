"""``affectlab info``: versions, where Ray would run, storage settings (never secrets)."""

from __future__ import annotations

import importlib.metadata
import platform
import sys

import click

from affectlab import __version__, storage
from affectlab.runtime import where_ray_runs

PACKAGES = ("ray", "torch", "pyarrow", "opensmile", "face-alignment", "opencv-python", "optuna", "pandas", "av", "dlib-bin")


@click.command("info")
def command() -> None:
    """Print versions, where Ray work would run and the storage settings (no secrets)."""
    click.echo(f"affectlab {__version__} on Python {sys.version.split()[0]} ({platform.platform()})")
    for name in PACKAGES:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        click.echo(f"  {name:<15} {version}")
    target = where_ray_runs()
    if target.mode == "cluster":
        click.echo(f"ray: cluster at RAY_ADDRESS={target.address}")
    else:
        click.echo(f"ray: embedded local cluster started in-process ({target.num_cpus} CPUs, dashboard on 127.0.0.1)")
    try:
        import torch

        gpu = f"{torch.cuda.device_count()} CUDA device(s)" if torch.cuda.is_available() else "none (CPU)"
    except ImportError:  # pragma: no cover
        gpu = "torch not installed"
    click.echo(f"gpu: {gpu}")
    for key, value in storage.describe().items():
        click.echo(f"{key}: {value}")
