"""Realistic objects for the drift-diff tests: what Helm renders, and what the API server returns
after a Helm server-side apply (manager ``helm``) plus controller, ``kubectl edit`` and
``kubectl scale`` writes, with managedFields as the API server records them."""

from __future__ import annotations

import copy
from typing import Any

import yaml

DESIRED_DEPLOYMENT_YAML = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app.kubernetes.io/name: web
    app.kubernetes.io/instance: web
    app.kubernetes.io/managed-by: Helm
    helm.sh/chart: webapp-1.0.0
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: web
  template:
    metadata:
      labels:
        app.kubernetes.io/name: web
    spec:
      containers:
        - name: web
          image: "registry.local/web:1.0.0"
          args: ["--port", "8080"]
          ports:
            - name: http
              containerPort: 8080
          env:
            - name: LOG_LEVEL
              value: info
            - name: WORKERS
              value: "4"
          resources:
            requests:
              cpu: 0.5
              memory: 1024Mi
            limits:
              cpu: 1
              memory: 1Gi
"""

# What the API server stores after `helm upgrade --install` (SSA, manager "helm"), the Deployment
# controller's revision annotation and status writes, with the defaults the server fills in.
LIVE_DEPLOYMENT_YAML = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: apps
  uid: 6f1c2a9e-2d7b-4c8e-9a51-3f0e8d2c7b11
  resourceVersion: "48213"
  generation: 3
  creationTimestamp: "2026-05-01T10:00:00Z"
  annotations:
    deployment.kubernetes.io/revision: "3"
    meta.helm.sh/release-name: web
    meta.helm.sh/release-namespace: apps
  labels:
    app.kubernetes.io/name: web
    app.kubernetes.io/instance: web
    app.kubernetes.io/managed-by: Helm
    helm.sh/chart: webapp-1.0.0
  managedFields:
    - apiVersion: apps/v1
      fieldsType: FieldsV1
      fieldsV1:
        f:metadata:
          f:annotations:
            f:meta.helm.sh/release-name: {}
            f:meta.helm.sh/release-namespace: {}
          f:labels:
            f:app.kubernetes.io/instance: {}
            f:app.kubernetes.io/managed-by: {}
            f:app.kubernetes.io/name: {}
            f:helm.sh/chart: {}
        f:spec:
          f:replicas: {}
          f:selector: {}
          f:template:
            f:metadata:
              f:labels:
                f:app.kubernetes.io/name: {}
            f:spec:
              f:containers:
                k:{"name":"web"}:
                  .: {}
                  f:args: {}
                  f:env:
                    k:{"name":"LOG_LEVEL"}:
                      .: {}
                      f:name: {}
                      f:value: {}
                    k:{"name":"WORKERS"}:
                      .: {}
                      f:name: {}
                      f:value: {}
                  f:image: {}
                  f:name: {}
                  f:ports:
                    k:{"containerPort":8080,"protocol":"TCP"}:
                      .: {}
                      f:containerPort: {}
                      f:name: {}
                  f:resources:
                    f:limits:
                      f:cpu: {}
                      f:memory: {}
                    f:requests:
                      f:cpu: {}
                      f:memory: {}
      manager: helm
      operation: Apply
      time: "2026-05-01T10:00:00Z"
    - apiVersion: apps/v1
      fieldsType: FieldsV1
      fieldsV1:
        f:metadata:
          f:annotations:
            .: {}
            f:deployment.kubernetes.io/revision: {}
      manager: kube-controller-manager
      operation: Update
      time: "2026-05-01T10:00:02Z"
    - apiVersion: apps/v1
      fieldsType: FieldsV1
      fieldsV1:
        f:status:
          f:availableReplicas: {}
          f:conditions:
            .: {}
            k:{"type":"Available"}:
              .: {}
              f:lastTransitionTime: {}
              f:status: {}
              f:type: {}
          f:observedGeneration: {}
          f:readyReplicas: {}
          f:replicas: {}
          f:updatedReplicas: {}
      manager: kube-controller-manager
      operation: Update
      subresource: status
      time: "2026-05-01T10:00:05Z"
spec:
  progressDeadlineSeconds: 600
  replicas: 2
  revisionHistoryLimit: 10
  selector:
    matchLabels:
      app.kubernetes.io/name: web
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 25%
  template:
    metadata:
      creationTimestamp: null
      labels:
        app.kubernetes.io/name: web
    spec:
      containers:
        - name: web
          image: registry.local/web:1.0.0
          imagePullPolicy: IfNotPresent
          args: ["--port", "8080"]
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
          env:
            - name: LOG_LEVEL
              value: info
            - name: WORKERS
              value: "4"
          resources:
            requests:
              cpu: 500m
              memory: 1Gi
            limits:
              cpu: "1"
              memory: 1Gi
          terminationMessagePath: /dev/termination-log
          terminationMessagePolicy: File
      dnsPolicy: ClusterFirst
      restartPolicy: Always
      schedulerName: default-scheduler
      securityContext: {}
      terminationGracePeriodSeconds: 30
status:
  availableReplicas: 2
  observedGeneration: 3
  readyReplicas: 2
  replicas: 2
  updatedReplicas: 2
  conditions:
    - type: Available
      status: "True"
      lastTransitionTime: "2026-05-01T10:00:05Z"
"""

# `kubectl edit deploy web` adding label team=payments and env DEBUG=1: an Update entry owning
# exactly what the edit introduced.
KUBECTL_EDIT_ENTRY_YAML = """\
apiVersion: apps/v1
fieldsType: FieldsV1
fieldsV1:
  f:metadata:
    f:labels:
      f:team: {}
  f:spec:
    f:template:
      f:spec:
        f:containers:
          k:{"name":"web"}:
            f:env:
              k:{"name":"DEBUG"}:
                .: {}
                f:name: {}
                f:value: {}
manager: kubectl-edit
operation: Update
time: "2026-05-02T09:00:00Z"
"""

# `kubectl scale deploy web --replicas 5`: through the scale subresource, manager "kubectl".
KUBECTL_SCALE_ENTRY_YAML = """\
apiVersion: apps/v1
fieldsType: FieldsV1
fieldsV1:
  f:spec:
    f:replicas: {}
manager: kubectl
operation: Update
subresource: scale
time: "2026-05-02T09:05:00Z"
"""

DESIRED_SERVICE_YAML = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  labels:
    app.kubernetes.io/name: web
spec:
  type: ClusterIP
  selector:
    app.kubernetes.io/name: web
  ports:
    - name: http
      port: "80"
      targetPort: http
"""

LIVE_SERVICE_YAML = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: apps
  uid: 0b8f0c1e-0000-4000-8000-000000000001
  resourceVersion: "48100"
  creationTimestamp: "2026-05-01T10:00:00Z"
  labels:
    app.kubernetes.io/name: web
    app.kubernetes.io/managed-by: Helm
  annotations:
    meta.helm.sh/release-name: web
    meta.helm.sh/release-namespace: apps
  managedFields:
    - apiVersion: v1
      fieldsType: FieldsV1
      fieldsV1:
        f:metadata:
          f:annotations:
            f:meta.helm.sh/release-name: {}
            f:meta.helm.sh/release-namespace: {}
          f:labels:
            f:app.kubernetes.io/managed-by: {}
            f:app.kubernetes.io/name: {}
        f:spec:
          f:ports:
            k:{"port":80,"protocol":"TCP"}:
              .: {}
              f:name: {}
              f:port: {}
              f:targetPort: {}
          f:selector: {}
          f:type: {}
      manager: helm
      operation: Apply
      time: "2026-05-01T10:00:00Z"
spec:
  type: ClusterIP
  clusterIP: 10.96.14.7
  clusterIPs: [10.96.14.7]
  internalTrafficPolicy: Cluster
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  sessionAffinity: None
  selector:
    app.kubernetes.io/name: web
  ports:
    - name: http
      port: 80
      protocol: TCP
      targetPort: http
status:
  loadBalancer: {}
"""

DESIRED_CONFIGMAP_YAML = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  config.yaml: |
    listen: 8080
  LOG_FORMAT: json
"""

SECRET_PLAINTEXT = "hunter2-correct-horse"  # the value that must never leak into a result
SECRET_PLAINTEXT_B64 = "aHVudGVyMi1jb3JyZWN0LWhvcnNl"
OTHER_PLAINTEXT = "tr0ub4dor-and-3"
OTHER_PLAINTEXT_B64 = "dHIwdWI0ZG9yLWFuZC0z"


def load(text: str) -> dict[str, Any]:
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


def desired_deployment() -> dict[str, Any]:
    return load(DESIRED_DEPLOYMENT_YAML)


def live_deployment() -> dict[str, Any]:
    return load(LIVE_DEPLOYMENT_YAML)


def desired_service() -> dict[str, Any]:
    return load(DESIRED_SERVICE_YAML)


def live_service() -> dict[str, Any]:
    return load(LIVE_SERVICE_YAML)


def desired_configmap() -> dict[str, Any]:
    return load(DESIRED_CONFIGMAP_YAML)


def live_configmap() -> dict[str, Any]:
    live = as_live(desired_configmap(), manager="helm")
    live["metadata"]["annotations"] = {"meta.helm.sh/release-name": "web"}
    return live


def desired_secret(**string_data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "web-credentials"},
        "type": "Opaque",
        "stringData": dict(string_data),
    }


def live_secret(data: dict[str, str]) -> dict[str, Any]:
    """A live Secret as the API server returns it: ``data`` only (base64), never ``stringData``."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "web-credentials",
            "namespace": "apps",
            "uid": "5d1f-secret",
            "resourceVersion": "7",
            "annotations": {
                # client-side apply bookkeeping would carry the plaintext; normalize must drop it
                "kubectl.kubernetes.io/last-applied-configuration": (
                    '{"stringData":{"password":"' + SECRET_PLAINTEXT + '"}}'
                ),
            },
        },
        "type": "Opaque",
        "data": dict(data),
    }


def as_live(desired: dict[str, Any], *, manager: str = "helm", namespace: str = "apps") -> dict[str, Any]:
    """A minimal live copy of ``desired``: server metadata plus one managedFields entry owning
    every field desired sets (what an SSA apply by ``manager`` records)."""
    live = copy.deepcopy(desired)
    metadata = live.setdefault("metadata", {})
    metadata.update(
        namespace=namespace,
        uid="00000000-0000-4000-8000-000000000000",
        resourceVersion="1",
        creationTimestamp="2026-05-01T10:00:00Z",
    )
    metadata["managedFields"] = [
        {
            "apiVersion": str(desired.get("apiVersion")),
            "fieldsType": "FieldsV1",
            "fieldsV1": fields_of({k: v for k, v in desired.items() if k not in ("apiVersion", "kind")}),
            "manager": manager,
            "operation": "Apply",
            "time": "2026-05-01T10:00:00Z",
        }
    ]
    return live


def fields_of(value: Any) -> dict[str, Any]:
    """The FieldsV1 trie an apply of ``value`` records: maps by ``f:``, named items by ``k:``,
    other lists atomically."""
    if not isinstance(value, dict):
        return {}
    trie: dict[str, Any] = {}
    for key, sub in value.items():
        if isinstance(sub, list) and sub and all(isinstance(i, dict) and "name" in i for i in sub):
            trie[f"f:{key}"] = {
                'k:{"name":' + f'"{item["name"]}"' + "}": {".": {}, **fields_of(item)} for item in sub
            }
        else:
            trie[f"f:{key}"] = fields_of(sub)
    return trie


def edited(live: dict[str, Any], entry_yaml: str) -> dict[str, Any]:
    """``live`` with one more managedFields entry (the edit's values are set by the caller)."""
    out = copy.deepcopy(live)
    out["metadata"]["managedFields"].append(load(entry_yaml))
    return out


def container(obj: dict[str, Any], name: str = "web") -> dict[str, Any]:
    for item in obj["spec"]["template"]["spec"]["containers"]:
        if item["name"] == name:
            assert isinstance(item, dict)
            return item
    raise KeyError(name)
