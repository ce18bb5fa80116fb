"""Runtime: embedded local Ray by default, RAY_ADDRESS respected; repo-root import safety."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from affectlab.runtime import ensure_ray, ray_session, where_ray_runs

REPO = Path(__file__).resolve().parents[2]


def test_where_ray_runs(monkeypatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert where_ray_runs(2).mode == "local" and where_ray_runs(2).num_cpus == 2
    monkeypatch.setenv("RAY_ADDRESS", "ray://10.0.0.1:10001")
    target = where_ray_runs(2)
    assert target.mode == "cluster" and target.address == "ray://10.0.0.1:10001"


def test_embedded_session_starts_and_shuts_down(monkeypatch) -> None:
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if ray.is_initialized():  # another test's session fixture; this test needs its own
        ray.shutdown()
    with ray_session(num_cpus=1, dashboard=False) as target:
        assert target.mode == "local"
        assert ray.is_initialized()
        assert ray.cluster_resources()["CPU"] == 1
        assert ray.get(ray.remote(lambda: 41 + 1).remote()) == 42
    assert not ray.is_initialized()


def test_a_lazy_session_starts_ray_only_when_asked_and_shuts_it_down(monkeypatch) -> None:
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if ray.is_initialized():
        ray.shutdown()
    with ray_session(num_cpus=1, dashboard=False, lazy=True):
        assert not ray.is_initialized()  # nothing to do yet: no Ray (a finished preprocess resumes in ~2 s)
    assert not ray.is_initialized()
    ensure_ray()  # outside a lazy session: does nothing
    assert not ray.is_initialized()
    with ray_session(num_cpus=1, dashboard=False, lazy=True):
        ensure_ray()
        assert ray.is_initialized() and ray.cluster_resources()["CPU"] == 1
        ensure_ray()  # the second call keeps the same Ray
        assert ray.get(ray.remote(lambda: 6 * 7).remote()) == 42
    assert not ray.is_initialized()


def test_platform_stdlib_not_shadowed_with_repo_root_first() -> None:
    code = "import sys; sys.path.insert(0, %r); import platform; print(platform.system()); import affectlab" % str(REPO)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() in {"Linux", "Darwin", "Windows"}
    assert not (REPO / "platform" / "__init__.py").exists()
