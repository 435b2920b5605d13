"""Render deploy/kubernetes/ without kubectl: the kustomization features its files use.

``resources`` (files, and directories holding a kustomization.yaml), ``namespace``,
``labels`` (metadata labels only, as kustomize's ``labels`` without ``includeSelectors``),
``images`` (``newName``/``newTag``) and ``patches`` given as JSON 6902 operations in a file
with a ``target`` (kind and name). Anything else raises ``NotImplementedError``, so a
kustomization that grows a feature also grows this loader (the tests compare its output
with ``kubectl kustomize`` where kubectl exists).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KNOWN = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}

Resource = dict[str, Any]


def render(directory: Path) -> list[Resource]:
    """The resources of the kustomization in ``directory``, transformed as kustomize would."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    unknown = set(spec) - KNOWN
    if unknown:
        raise NotImplementedError(f"{directory}: kustomization fields {sorted(unknown)}")
    resources: list[Resource] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            resources.extend(render(path))
        else:
            text = path.read_text(encoding="utf-8")
            resources.extend(doc for doc in yaml.safe_load_all(text) if doc)
    for patch in spec.get("patches", []):
        ops = yaml.safe_load((directory / patch["path"]).read_text(encoding="utf-8"))
        if not isinstance(ops, list):
            raise NotImplementedError(f"{patch['path']}: only JSON 6902 patches")
        target = patch["target"]
        matched = [
            r
            for r in resources
            if r["kind"] == target["kind"] and r["metadata"]["name"] == target["name"]
        ]
        if not matched:
            raise ValueError(f"{patch['path']}: no {target['kind']} {target['name']}")
        for resource in matched:
            for op in ops:
                apply_op(resource, op)
    for label in spec.get("labels", []):
        if set(label) - {"pairs"}:
            raise NotImplementedError(f"labels options {sorted(label)}")
        for resource in resources:
            resource["metadata"].setdefault("labels", {}).update(label["pairs"])
    if "namespace" in spec:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = spec["namespace"]
    for image in spec.get("images", []):
        for container in _containers(resources):
            name, _, _tag = container["image"].partition(":")
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    return resources


def _containers(resources: list[Resource]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for resource in resources:
        pod = resource.get("spec", {}).get("template", {}).get("spec", {})
        found.extend(pod.get("containers", []))
        found.extend(pod.get("initContainers", []))
    return found


def apply_op(doc: Resource, op: dict[str, Any]) -> None:
    """Apply one JSON 6902 ``add``/``replace``/``remove`` operation to ``doc`` in place."""
    *parents, last = [
        p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")
    ]
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) and last != "-" else last
    if op["op"] == "remove":
        del node[key]
    elif op["op"] == "replace":
        if isinstance(node, dict) and key not in node:
            raise KeyError(f"replace of missing {op['path']}")
        node[key] = copy.deepcopy(op["value"])
    elif op["op"] == "add":
        if isinstance(node, list):
            node.insert(len(node) if key == "-" else key, copy.deepcopy(op["value"]))
        else:
            node[key] = copy.deepcopy(op["value"])
    else:
        raise NotImplementedError(f"JSON patch op {op['op']}")
