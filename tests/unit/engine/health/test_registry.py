"""The RULES table and has_rule/HAS_RULE know every kind issue 14 added."""

from __future__ import annotations

import pytest

from moorage.engine import health
from moorage.engine.health import (
    HAS_RULE,
    argorollouts,
    certmanager,
    clusterapi,
    cnpg,
    cronjob,
    crossplane,
    externalsecrets,
    flux,
    gatewayapi,
    generic,
    has_rule,
    istio,
    karpenter,
    keda,
    knative,
    monitoring,
    pdb,
    sealedsecrets,
    snapshot,
)
from tests.unit.engine.health.helpers import D, check, cond, obj

MODULES = (
    argorollouts,
    certmanager,
    clusterapi,
    cnpg,
    crossplane,
    externalsecrets,
    flux,
    gatewayapi,
    istio,
    karpenter,
    keda,
    knative,
    monitoring,
    sealedsecrets,
    snapshot,
)

NEW_KINDS = [
    ("batch", "CronJob"),
    ("policy", "PodDisruptionBudget"),
    ("cert-manager.io", "Certificate"),
    ("cert-manager.io", "CertificateRequest"),
    ("cert-manager.io", "Issuer"),
    ("cert-manager.io", "ClusterIssuer"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
    ("gateway.networking.k8s.io", "HTTPRoute"),
    ("gateway.networking.k8s.io", "GRPCRoute"),
    ("argoproj.io", "Rollout"),
    ("argoproj.io", "AnalysisRun"),
    ("helm.toolkit.fluxcd.io", "HelmRelease"),
    ("kustomize.toolkit.fluxcd.io", "Kustomization"),
    ("source.toolkit.fluxcd.io", "GitRepository"),
    ("source.toolkit.fluxcd.io", "HelmRepository"),
    ("source.toolkit.fluxcd.io", "OCIRepository"),
    ("source.toolkit.fluxcd.io", "Bucket"),
    ("source.toolkit.fluxcd.io", "HelmChart"),
    ("external-secrets.io", "ExternalSecret"),
    ("external-secrets.io", "ClusterExternalSecret"),
    ("external-secrets.io", "SecretStore"),
    ("external-secrets.io", "ClusterSecretStore"),
    ("keda.sh", "ScaledObject"),
    ("keda.sh", "ScaledJob"),
    ("karpenter.sh", "NodePool"),
    ("karpenter.sh", "NodeClaim"),
    ("monitoring.coreos.com", "Prometheus"),
    ("monitoring.coreos.com", "Alertmanager"),
    ("postgresql.cnpg.io", "Cluster"),
    ("bitnami.com", "SealedSecret"),
    ("snapshot.storage.k8s.io", "VolumeSnapshot"),
    ("pkg.crossplane.io", "Provider"),
    ("s3.aws.upbound.io", "Bucket"),
    ("cluster.x-k8s.io", "Cluster"),
    ("cluster.x-k8s.io", "Machine"),
    ("cluster.x-k8s.io", "MachineDeployment"),
    ("networking.istio.io", "VirtualService"),
    ("serving.knative.dev", "Service"),
]


@pytest.mark.parametrize(("group", "kind"), NEW_KINDS, ids=[f"{g}/{k}" for g, k in NEW_KINDS])
def test_has_rule_for_new_kinds(group: str, kind: str) -> None:
    assert has_rule(group, kind)
    assert HAS_RULE(group, kind)


def test_has_rule_stays_false_for_unknown_kinds() -> None:
    assert not has_rule("example.com", "Widget")
    assert not has_rule("upbound.io.example.com", "Thing")
    assert not has_rule("", "Certificate")


def test_every_module_rule_is_registered() -> None:
    for module in MODULES:
        for key, rule in module.RULES.items():
            assert health.RULES[key] is rule, key
    assert health.RULES[("batch", "CronJob")] is cronjob.assess
    assert health.RULES[("policy", "PodDisruptionBudget")] is pdb.assess
    assert ("batch", "CronJob") not in generic.STATIC_KINDS
    assert ("policy", "PodDisruptionBudget") not in generic.STATIC_KINDS


def test_crossplane_resources_of_any_group_reach_the_crossplane_rule() -> None:
    composite = obj(
        "platform.example.org/v1",
        "XNetwork",
        spec={"crossplane": {"compositionRef": {"name": "aws"}}},
        status={"conditions": [cond("Synced", "False", "ReconcileError", "cannot render composed resource")]},
    )
    check(composite, D, "Synced is False: ReconcileError")
