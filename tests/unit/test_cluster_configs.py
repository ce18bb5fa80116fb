"""The deployable cluster configs in jobs/cluster/ (no Ray is started, nothing leaves this machine).

* ``aws.yaml`` (``ray up``) is validated with ``jsonschema`` against the schema file shipped inside
  the installed ``ray`` package (``ray/autoscaler/ray-schema.json``, what ``ray up`` validates
  with), then prepared and validated by Ray's own launcher code, offline (defaults, docker,
  head type, ``min_workers`` <= ``max_workers``), as ``ray up`` does before it talks to AWS.
* ``rayjob.yaml`` (KubeRay) is checked by :func:`rayjob_problems` for the fields the RayJob CRD
  and KubeRay's validation require (field names from KubeRay's ``ray.io/v1`` API reference).
* The RayJob's entrypoint names a script of this repository, and its arguments are parsed by that
  script's command (``affectlab preprocess``) and its dataset card validated.

Each check has a negative control: a mutated copy is rejected.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "jobs" / "cluster"
LAUNCHER = CLUSTER / "aws.yaml"
RAYJOB = CLUSTER / "rayjob.yaml"


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path}: not a YAML mapping"
    return data


def ray_schema_path() -> Path:
    """The launcher schema inside the installed ray package, found without importing ray."""
    spec = importlib.util.find_spec("ray")
    assert spec is not None and spec.submodule_search_locations, "ray is not installed"
    path = Path(next(iter(spec.submodule_search_locations))) / "autoscaler" / "ray-schema.json"
    assert path.is_file(), f"no launcher schema at {path}"
    return path


def pinned(name: str) -> str:
    """The version constraints.txt pins for ``name``."""
    match = re.search(rf"^{re.escape(name)}==(\S+)$", (REPO / "constraints.txt").read_text(), re.MULTILINE)
    assert match, f"constraints.txt pins no {name}"
    return match.group(1)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(ray_schema_path().read_text())


@pytest.fixture
def launcher() -> dict[str, Any]:
    return _load(LAUNCHER)


@pytest.fixture
def rayjob() -> dict[str, Any]:
    return _load(RAYJOB)


# --- ray up: the cluster launcher config --------------------------------------------------------


def test_schema_is_the_installed_rays() -> None:
    import ray

    assert ray_schema_path() == Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"


def test_launcher_config_is_valid_against_rays_schema(launcher: dict[str, Any], schema: dict[str, Any]) -> None:
    jsonschema.validate(launcher, schema)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda c: c.update(max_workers="twelve"), id="wrong-type-max_workers"),
        pytest.param(lambda c: c.update(max_worker=12), id="unknown-top-level-key"),
        pytest.param(lambda c: c["available_node_types"]["gpu_worker"].update(min_worker=0), id="unknown-node-type-key"),
        pytest.param(lambda c: c["available_node_types"]["gpu_worker"]["resources"].update(GPU="1"), id="string-resource"),
        pytest.param(lambda c: c["available_node_types"]["cpu_worker"].pop("node_config"), id="missing-node_config"),
        pytest.param(lambda c: c["docker"].update(imagee="rayproject/ray"), id="unknown-docker-key"),
        pytest.param(lambda c: c.pop("provider"), id="missing-provider"),
    ],
)
def test_negative_control_schema_rejects_a_broken_copy(launcher, schema, mutate) -> None:
    broken = copy.deepcopy(launcher)
    mutate(broken)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_launcher_config_passes_rays_own_preparation_and_validation(launcher: dict[str, Any]) -> None:
    """What ``ray up`` does before contacting AWS: merge the AWS defaults, check docker, fill the
    node types' worker counts, validate (schema + head type + min_workers vs max_workers)."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(launcher))
    validate_config(prepared)
    assert prepared["head_node_type"] == "head"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c.update(head_node_type="gpu"), "head_node_type"),
        (lambda c: c["available_node_types"]["cpu_worker"].update(min_workers=13), "min_workers"),
    ],
    ids=["unknown-head-type", "min-workers-above-max"],
)
def test_negative_control_ray_validation_rejects_a_broken_copy(launcher, mutate, message) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    broken = copy.deepcopy(launcher)
    mutate(broken)
    with pytest.raises(ValueError, match=message):
        validate_config(prepare_config(broken))


def test_launcher_node_types_images_and_setup(launcher: dict[str, Any]) -> None:
    types = launcher["available_node_types"]
    assert types["cpu_worker"]["resources"].get("GPU", 0) == 0 and types["cpu_worker"]["resources"]["CPU"] > 0
    assert types["gpu_worker"]["resources"]["GPU"] == 1
    assert types["head"]["resources"] == {"CPU": 0}  # drivers only; no tasks on the head
    assert launcher["max_workers"] >= sum(t.get("min_workers", 0) for t in types.values())
    # the images' Ray is the version the project pins (bump both together)
    ray_version = pinned("ray")
    images = [launcher["docker"]["image"], types["gpu_worker"]["docker"]["worker_image"]]
    for image in images:
        assert image.startswith(f"rayproject/ray:{ray_version}-"), (image, ray_version)
    assert images[1].endswith("-gpu")
    # the checkout is mounted from the repository root and installed with the pinned versions
    (remote, local), = launcher["file_mounts"].items()
    assert (REPO / local).resolve() == REPO
    assert f"-c {remote}/constraints.txt {remote}" in " ".join(launcher["setup_commands"])
    for path in ("constraints.txt", "pyproject.toml"):
        assert (REPO / local / path).is_file()
    assert {".git", ".venv"} <= set(launcher["rsync_exclude"])  # never upload the virtualenv
    # token authentication on the head and the workers, the token synced from the head
    assert all("RAY_AUTH_MODE=token" in launcher[k][-1] for k in ("head_start_ray_commands", "worker_start_ray_commands"))
    assert "~/.ray/auth_token" in launcher["cluster_synced_files"]


# --- KubeRay: the RayJob manifest ---------------------------------------------------------------

DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_RAYJOB_NAME = 47  # KubeRay: RayCluster names <= 53, and it appends 6 characters to the RayJob's
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}


def _get(doc: Any, path: str) -> Any:
    for key in path.split("."):
        if isinstance(doc, list):
            doc = doc[int(key)] if key.isdigit() and int(key) < len(doc) else None
        elif isinstance(doc, dict):
            doc = doc.get(key)
        else:
            return None
    return doc


def _pod_problems(template: Any, where: str) -> list[str]:
    problems = []
    containers = _get(template, "spec.containers")
    if not isinstance(containers, list) or not containers:
        return [f"{where}.template.spec.containers: at least one container is required"]
    for i, container in enumerate(containers):
        if not isinstance(container, dict):
            problems.append(f"{where}.template.spec.containers.{i}: not a mapping")
            continue
        for key in ("name", "image"):
            if not isinstance(container.get(key), str) or not container[key]:
                problems.append(f"{where}.template.spec.containers.{i}.{key}: required string")
    policy = _get(template, "spec.restartPolicy")
    if policy not in (None, "Never"):  # KubeRay with autoscaler v2 (Ray >= 2.47)
        problems.append(f"{where}.template.spec.restartPolicy: must be Never or unset, got {policy!r}")
    return problems


def _start_params_problems(params: Any, where: str) -> list[str]:
    if not isinstance(params, dict):
        return [f"{where}.rayStartParams: required mapping (may be empty)"]
    return [f"{where}.rayStartParams.{k}: values must be strings (quote {v!r})"
            for k, v in params.items() if not isinstance(v, str)]


def rayjob_problems(doc: Any) -> list[str]:
    """Every field of a RayJob manifest that KubeRay's CRD or validation would reject (empty: fine)."""
    if not isinstance(doc, dict):
        return ["manifest: not a mapping"]
    problems = []
    if doc.get("apiVersion") != "ray.io/v1":
        problems.append(f"apiVersion: must be ray.io/v1, got {doc.get('apiVersion')!r}")
    if doc.get("kind") != "RayJob":
        problems.append(f"kind: must be RayJob, got {doc.get('kind')!r}")
    name = _get(doc, "metadata.name")
    if not isinstance(name, str) or not DNS1035.match(name) or len(name) > MAX_RAYJOB_NAME:
        problems.append(f"metadata.name: required DNS-1035 label of at most {MAX_RAYJOB_NAME} characters, got {name!r}")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return [*problems, "spec: required mapping"]
    mode = spec.get("submissionMode", "K8sJobMode")
    if mode not in SUBMISSION_MODES:
        problems.append(f"spec.submissionMode: one of {sorted(SUBMISSION_MODES)}, got {mode!r}")
    if mode != "InteractiveMode" and (not isinstance(spec.get("entrypoint"), str) or not spec["entrypoint"].strip()):
        problems.append("spec.entrypoint: required command")
    shutdown = spec.get("shutdownAfterJobFinishes", False)
    ttl = spec.get("ttlSecondsAfterFinished", 0)
    if not isinstance(shutdown, bool):
        problems.append(f"spec.shutdownAfterJobFinishes: must be a boolean, got {shutdown!r}")
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0:
        problems.append(f"spec.ttlSecondsAfterFinished: non-negative integer, got {ttl!r}")
    elif ttl > 0 and shutdown is not True:
        problems.append("spec.ttlSecondsAfterFinished: needs spec.shutdownAfterJobFinishes: true")
    for key, minimum in (("backoffLimit", 0), ("activeDeadlineSeconds", 1)):
        value = spec.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < minimum):
            problems.append(f"spec.{key}: integer >= {minimum}, got {value!r}")
    runtime_env = spec.get("runtimeEnvYAML")
    if runtime_env is not None:
        try:
            env = yaml.safe_load(runtime_env) if isinstance(runtime_env, str) else None
        except yaml.YAMLError as exc:
            env = exc
        if not isinstance(env, dict):
            problems.append("spec.runtimeEnvYAML: must be a string holding a YAML mapping")
        elif (isinstance(env.get("working_dir"), str) and "://" not in env["working_dir"]
              and mode != "K8sJobMode"):
            problems.append("spec.runtimeEnvYAML.working_dir: a local directory is uploaded by the submitter pod "
                            "(K8sJobMode); with another mode use a remote URI (s3://..., https://...)")
    cluster = spec.get("rayClusterSpec")
    if not isinstance(cluster, dict):
        if not spec.get("clusterSelector"):
            problems.append("spec.rayClusterSpec: required (or spec.clusterSelector for an existing cluster)")
        return problems
    if not isinstance(cluster.get("rayVersion"), str):
        problems.append("spec.rayClusterSpec.rayVersion: required string (the image's Ray version)")
    head = cluster.get("headGroupSpec")
    if not isinstance(head, dict):
        problems.append("spec.rayClusterSpec.headGroupSpec: required")
    else:
        where = "spec.rayClusterSpec.headGroupSpec"
        problems += _start_params_problems(head.get("rayStartParams"), where) + _pod_problems(head.get("template"), where)
    groups = cluster.get("workerGroupSpecs")
    if not isinstance(groups, list) or not groups:
        problems.append("spec.rayClusterSpec.workerGroupSpecs: required non-empty list")
        return problems
    names: set[str] = set()
    for i, group in enumerate(groups):
        where = f"spec.rayClusterSpec.workerGroupSpecs.{i}"
        if not isinstance(group, dict):
            problems.append(f"{where}: not a mapping")
            continue
        name = group.get("groupName")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}.groupName: required string")
        elif name in names:
            problems.append(f"{where}.groupName: {name!r} used twice")
        else:
            names.add(name)
        counts = {k: group.get(k) for k in ("replicas", "minReplicas", "maxReplicas")}
        for key, value in counts.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                problems.append(f"{where}.{key}: required non-negative integer, got {value!r}")
        if all(isinstance(v, int) and not isinstance(v, bool) for v in counts.values()) and not (
                counts["minReplicas"] <= counts["replicas"] <= counts["maxReplicas"]):
            problems.append(f"{where}: needs minReplicas <= replicas <= maxReplicas, got {counts}")
        problems += _start_params_problems(group.get("rayStartParams"), where) + _pod_problems(group.get("template"), where)
    return problems


def test_rayjob_has_every_field_kuberay_requires(rayjob: dict[str, Any]) -> None:
    assert rayjob_problems(rayjob) == []
    spec = rayjob["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    assert spec["rayClusterSpec"]["rayVersion"] == pinned("ray")  # the image's Ray = the pinned one


@pytest.mark.parametrize(
    "path, value, field",
    [
        ("apiVersion", "ray.io/v1alpha1", "apiVersion"),
        ("kind", "RayCluster", "kind"),
        ("metadata.name", None, "metadata.name"),
        ("metadata.name", "Affectlab_Preprocess", "metadata.name"),
        ("metadata.name", "a" * 48, "metadata.name"),
        ("spec.entrypoint", None, "spec.entrypoint"),
        ("spec.submissionMode", "K8sMode", "spec.submissionMode"),
        ("spec.submissionMode", "HTTPMode", "working_dir"),
        ("spec.shutdownAfterJobFinishes", False, "spec.ttlSecondsAfterFinished"),
        ("spec.runtimeEnvYAML", "- not\n- a mapping\n", "spec.runtimeEnvYAML"),
        ("spec.rayClusterSpec.headGroupSpec.template.spec.containers.0.image", None,
         "headGroupSpec.template.spec.containers.0.image"),
        ("spec.rayClusterSpec.headGroupSpec.template.spec.containers", [], "headGroupSpec.template.spec.containers"),
        ("spec.rayClusterSpec.headGroupSpec.rayStartParams", None, "headGroupSpec.rayStartParams"),
        ("spec.rayClusterSpec.headGroupSpec.rayStartParams.num-cpus", 0, "rayStartParams.num-cpus"),
        ("spec.rayClusterSpec.headGroupSpec.template.spec.restartPolicy", "Always", "restartPolicy"),
        ("spec.rayClusterSpec.workerGroupSpecs", [], "workerGroupSpecs"),
        ("spec.rayClusterSpec.workerGroupSpecs.0.groupName", None, "workerGroupSpecs.0.groupName"),
        ("spec.rayClusterSpec.workerGroupSpecs.1.groupName", "cpu", "workerGroupSpecs.1.groupName"),
        ("spec.rayClusterSpec.workerGroupSpecs.0.replicas", None, "workerGroupSpecs.0.replicas"),
        ("spec.rayClusterSpec.workerGroupSpecs.0.minReplicas", None, "workerGroupSpecs.0.minReplicas"),
        ("spec.rayClusterSpec.workerGroupSpecs.0.maxReplicas", None, "workerGroupSpecs.0.maxReplicas"),
        ("spec.rayClusterSpec.workerGroupSpecs.0.maxReplicas", 1, "minReplicas <= replicas <= maxReplicas"),
        ("spec.rayClusterSpec.workerGroupSpecs.0.rayStartParams", None, "workerGroupSpecs.0.rayStartParams"),
        ("spec.rayClusterSpec.workerGroupSpecs.0.template", None, "workerGroupSpecs.0.template.spec.containers"),
        ("spec.rayClusterSpec", None, "spec.rayClusterSpec"),
    ],
)
def test_negative_control_checker_names_the_broken_field(rayjob, path: str, value: Any, field: str) -> None:
    broken = copy.deepcopy(rayjob)
    *parents, last = path.split(".")
    node = broken
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is None:
        del node[last]  # missing field
    else:
        node[last] = value
    problems = rayjob_problems(broken)
    assert any(field in p for p in problems), problems


# --- the entrypoint: a script of this repository, arguments its parser accepts ------------------


def _entrypoint_argv(rayjob: dict[str, Any]) -> list[str]:
    argv = shlex.split(rayjob["spec"]["entrypoint"])
    assert argv[0] == "python", argv
    return argv[1:]


def _parse_preprocess(args: list[str]) -> dict[str, Any]:
    from affectlab.cli.preprocess import command

    with command.make_context("preprocess", list(args)) as ctx:
        return dict(ctx.params)


def test_entrypoint_script_exists_and_runs_the_preprocess_verb(rayjob: dict[str, Any]) -> None:
    script, *args = _entrypoint_argv(rayjob)
    assert script == "jobs/preprocess.py" and (REPO / script).is_file()
    # the script itself (as the job runs it, from the working_dir = repository root) is the verb
    result = subprocess.run([sys.executable, script, "--help"], check=False, cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Usage: affectlab preprocess" in result.stdout
    for flag in (a.split("=", 1)[0] for a in args if a.startswith("--")):
        assert flag in result.stdout, f"{flag} is not an option of jobs/preprocess.py"


def test_entrypoint_arguments_parse_and_name_a_valid_card(rayjob: dict[str, Any]) -> None:
    from affectlab.data.cards import load_card

    _, *args = _entrypoint_argv(rayjob)
    params = _parse_preprocess(args)
    assert params["out"].startswith("s3://")
    assert params["num_workers"] and params["no_progress"] is True
    card = REPO / params["card"]
    assert card.is_file(), card
    loaded = load_card(str(card), params["overrides"], check_root=False)
    roots = [o.split("=", 1)[1] for o in params["overrides"] if o.startswith("root=")]
    assert roots and loaded.root == roots[-1] and loaded.root.startswith("s3://")  # the media on S3


@pytest.mark.parametrize(
    "args, error",
    [
        (["datasets/ravdess.yaml", "--out", "s3://b/p", "--audo", "egemaps"], click.NoSuchOption),
        (["datasets/ravdess.yaml", "--audio", "egemaps"], click.MissingParameter),
        (["datasets/ravdess.yaml", "--out", "s3://b/p", "--num-workers", "0"], click.BadParameter),
    ],
    ids=["misspelt-flag", "missing-out", "bad-value"],
)
def test_negative_control_parser_rejects_bad_arguments(args: list[str], error: type[Exception]) -> None:
    with pytest.raises(error):
        _parse_preprocess(args)


# --- no secrets in either file ------------------------------------------------------------------

SECRET = re.compile(
    r"AKIA[0-9A-Z]{16}"                                                   # an AWS access key id
    r"|(?i:aws_secret_access_key|aws_session_token|redis-password|auth_token)\s*[:=]\s*\S"  # a value
)


@pytest.mark.parametrize("path", [LAUNCHER, RAYJOB], ids=lambda p: p.name)
def test_no_credentials_in_cluster_configs(path: Path) -> None:
    text = path.read_text()
    assert not SECRET.search(text), SECRET.search(text)
    assert SECRET.search("x: AKIAABCDEFGHIJKLMNOP") and SECRET.search("AWS_SECRET_ACCESS_KEY=abc")  # control
