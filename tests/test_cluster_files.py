"""The cluster files parse, carry the keys Ray and KubeRay need, ask for GPUs where they
should, keep token auth on, and match the pinned Ray version."""
import pathlib
import re

import yaml

import ray

CLUSTER = pathlib.Path(__file__).resolve().parent.parent / "cluster"


def test_launcher_file():
    doc = yaml.safe_load((CLUSTER / "aws-gpu.yaml").read_text())
    for key in ("cluster_name", "provider", "available_node_types", "head_node_type", "setup_commands",
                "head_start_ray_commands", "worker_start_ray_commands"):
        assert key in doc, key
    types = doc["available_node_types"]
    assert doc["head_node_type"] in types
    gpu = types["ray.worker.gpu"]
    assert gpu["node_config"]["InstanceType"].startswith(("g", "p"))  # GPU instance families
    assert ray.__version__ in doc["docker"]["image"]
    assert all("RAY_AUTH_MODE=token" in c for c in doc["head_start_ray_commands"][1:] + doc["worker_start_ray_commands"][1:])
    assert "--dashboard-host=127.0.0.1" in doc["head_start_ray_commands"][1]
    assert any("pip install" in c for c in doc["setup_commands"])


def _gpu_limits(group) -> list:
    return [c["resources"]["limits"].get("nvidia.com/gpu") for c in group["template"]["spec"]["containers"]]


def _check_cluster_spec(spec):
    assert spec["rayVersion"] == ray.__version__
    assert spec["authOptions"]["mode"] == "token"
    head = spec["headGroupSpec"]
    images = [c["image"] for c in head["template"]["spec"]["containers"]]
    gpu_groups = [g for g in spec["workerGroupSpecs"] if any(_gpu_limits(g))]
    assert gpu_groups, "no worker group asks for nvidia.com/gpu"
    for g in gpu_groups:
        assert all(int(n) >= 1 for n in _gpu_limits(g))
        images += [c["image"] for c in g["template"]["spec"]["containers"]]
    assert all(re.search(rf":{re.escape(ray.__version__)}\b", image) for image in images), images
    mounts = [m["mountPath"] for c in head["template"]["spec"]["containers"] for m in c.get("volumeMounts", [])]
    assert "/shared" in mounts  # shared storage for Tune results


def test_kuberay_raycluster():
    docs = list(yaml.safe_load_all((CLUSTER / "kuberay" / "raycluster.yaml").read_text()))
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1"
    _check_cluster_spec(cluster["spec"])
    pvc = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]


def test_kuberay_rayjob():
    doc = yaml.safe_load((CLUSTER / "kuberay" / "rayjob.yaml").read_text())
    assert doc["kind"] == "RayJob" and doc["apiVersion"] == "ray.io/v1"
    assert doc["spec"]["entrypoint"].startswith("pgu search")
    assert "--storage-path /shared" in doc["spec"]["entrypoint"] and "--gpus-per-trial" in doc["spec"]["entrypoint"]
    _check_cluster_spec(doc["spec"]["rayClusterSpec"])
