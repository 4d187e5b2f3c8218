"""Gateway API: GatewayClass, Gateway (with listeners), routes per parent, BackendTLSPolicy."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.engine.health.helpers import Case, D, H, P, check, cond, ids, obj

API = "gateway.networking.k8s.io/v1"
WAITING_DEFAULT = {
    "type": "Accepted",
    "status": "Unknown",
    "reason": "Pending",
    "message": "Waiting for controller",
    "lastTransitionTime": "1970-01-01T00:00:00Z",
}


def gc(*conds: Any, age: float = 2) -> dict[str, Any]:
    return obj(
        API,
        "GatewayClass",
        name="eg",
        namespace=None,
        age=age,
        generation=1,
        spec={"controllerName": "gateway.envoyproxy.io/gatewayclass-controller"},
        status={"conditions": list(conds)},
    )


def g(*conds: Any, listeners: Any = None, gen: int = 1, age: float = 2, **status: Any) -> dict[str, Any]:
    return obj(
        API,
        "Gateway",
        name="public",
        namespace="infra",
        age=age,
        generation=gen,
        spec={"gatewayClassName": "eg", "listeners": [{"name": "https", "port": 443, "protocol": "HTTPS"}]},
        status={"conditions": list(conds), "listeners": listeners or [], **status},
    )


def listener(*conds: Any, name: str = "https", routes: int = 2) -> dict[str, Any]:
    return {
        "name": name,
        "attachedRoutes": routes,
        "supportedKinds": [{"group": API.split("/")[0], "kind": "HTTPRoute"}],
        "conditions": list(conds),
    }


OK_LISTENER = listener(
    cond("Accepted", "True", "Accepted", observedGeneration=1),
    cond("ResolvedRefs", "True", "ResolvedRefs", observedGeneration=1),
    cond("Programmed", "True", "Programmed", observedGeneration=1),
)
ACCEPTED = cond(
    "Accepted", "True", "Accepted", "The Gateway has been scheduled by Envoy Gateway", observedGeneration=1
)
PROGRAMMED = cond(
    "Programmed",
    "True",
    "Programmed",
    "Address assigned to the Gateway, 1/1 envoy replicas available",
    observedGeneration=1,
)

GATEWAYS: list[Case] = [
    (
        "gatewayclass accepted",
        gc(cond("Accepted", "True", "Accepted", "Valid GatewayClass")),
        H,
        "Accepted is True",
    ),
    ("gatewayclass waiting", gc(WAITING_DEFAULT), P, "waiting for the controller gateway.envoyproxy.io"),
    ("gatewayclass never accepted", gc(WAITING_DEFAULT, age=30), D, "no progress for 30m"),
    (
        "gatewayclass invalid parameters",
        gc(cond("Accepted", "False", "InvalidParameters", 'EnvoyProxy "custom" not found')),
        D,
        "Accepted is False: InvalidParameters",
    ),
    (
        "gateway programmed",
        g(
            ACCEPTED,
            PROGRAMMED,
            listeners=[OK_LISTENER],
            addresses=[{"type": "IPAddress", "value": "203.0.113.9"}],
        ),
        H,
        "Programmed is True: Address assigned to the Gateway, 1/1 envoy replicas available at 203.0.113.9;"
        " 1 listener, 2 attached routes",
    ),
    ("gateway new", g(WAITING_DEFAULT), P, "Accepted is Unknown: Pending: Waiting for controller"),
    (
        "gateway waiting for an address",
        g(
            ACCEPTED,
            cond(
                "Programmed", "False", "AddressNotAssigned", "No addresses have been assigned to the Gateway"
            ),
        ),
        P,
        "Programmed is False: AddressNotAssigned",
    ),
    (
        "gateway invalid",
        g(cond("Accepted", "False", "Invalid", "Unsupported address type")),
        D,
        "Accepted is False: Invalid: Unsupported address type",
    ),
    (
        "gateway listener bad certificate",
        g(
            ACCEPTED,
            PROGRAMMED,
            listeners=[
                listener(
                    cond("Accepted", "True", "Accepted"),
                    cond(
                        "ResolvedRefs",
                        "False",
                        "InvalidCertificateRef",
                        "Secret infra/web-tls does not exist",
                    ),
                    cond("Programmed", "False", "Invalid"),
                )
            ],
        ),
        D,
        "listener https: ResolvedRefs is False: InvalidCertificateRef",
    ),
    (
        "gateway listener conflicted",
        g(
            ACCEPTED,
            PROGRAMMED,
            listeners=[listener(cond("Conflicted", "True", "HostnameConflict", "same hostname"))],
        ),
        D,
        "listener https: Conflicted: HostnameConflict: same hostname",
    ),
    ("gateway stale", g(ACCEPTED, PROGRAMMED, gen=2), P, "describes generation 1"),
    ("gateway malformed", g("x", listeners="y", addresses=5), P, "no Accepted condition yet"),
]


def route(kind: str, parents: Any, *, gen: int = 1, age: float = 2, refs: Any = None) -> dict[str, Any]:
    return obj(
        API,
        kind,
        name="web",
        namespace="apps",
        age=age,
        generation=gen,
        spec={"parentRefs": refs if refs is not None else [{"name": "public", "namespace": "infra"}]},
        status={"parents": parents},
    )


def parent(*conds: Any, name: str = "public") -> dict[str, Any]:
    return {
        "parentRef": {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": name,
            "namespace": "infra",
        },
        "controllerName": "gateway.envoyproxy.io/gatewayclass-controller",
        "conditions": list(conds),
    }


OK_PARENT = parent(
    cond("Accepted", "True", "Accepted", "Route is accepted", observedGeneration=1),
    cond(
        "ResolvedRefs",
        "True",
        "ResolvedRefs",
        "Resolved all the Object references for the Route",
        observedGeneration=1,
    ),
)
ROUTES: list[Case] = [
    ("httproute accepted", route("HTTPRoute", [OK_PARENT]), H, "accepted by Gateway infra/public"),
    ("grpcroute accepted", route("GRPCRoute", [OK_PARENT]), H, "accepted by Gateway infra/public"),
    ("httproute no parent status yet", route("HTTPRoute", []), P, "status.parents is empty"),
    (
        "httproute nobody answers",
        route("HTTPRoute", [], age=20),
        D,
        "check that parentRefs name an existing Gateway",
    ),
    (
        "httproute backend missing",
        route(
            "HTTPRoute",
            [
                parent(
                    cond("Accepted", "True", "Accepted"),
                    cond("ResolvedRefs", "False", "BackendNotFound", "Service apps/web-v2 not found"),
                )
            ],
        ),
        D,
        "Gateway infra/public: ResolvedRefs is False: BackendNotFound: Service apps/web-v2 not found",
    ),
    (
        "httproute not allowed",
        route(
            "HTTPRoute",
            [
                parent(
                    cond(
                        "Accepted",
                        "False",
                        "NotAllowedByListeners",
                        "No listeners included by this parent ref allowed this attachment.",
                    )
                )
            ],
        ),
        D,
        "Accepted is False: NotAllowedByListeners",
    ),
    (
        "httproute partially invalid",
        route(
            "HTTPRoute",
            [
                parent(
                    cond("Accepted", "True", "Accepted"),
                    cond("PartiallyInvalid", "True", "UnsupportedValue", "rule 2 dropped"),
                )
            ],
        ),
        D,
        "PartiallyInvalid: UnsupportedValue: rule 2 dropped",
    ),
    (
        "httproute pending parent",
        route("HTTPRoute", [parent(cond("Accepted", "Unknown", "Pending"))]),
        P,
        "Gateway infra/public: Accepted is Unknown: Pending",
    ),
    (
        "httproute second parent silent",
        route(
            "HTTPRoute",
            [OK_PARENT],
            refs=[{"name": "public", "namespace": "infra"}, {"name": "internal", "namespace": "infra"}],
        ),
        P,
        "waiting for Gateway infra/internal to report on it",
    ),
    ("httproute stale parent", route("HTTPRoute", [OK_PARENT], gen=2), P, "describes generation 1"),
    (
        "httproute malformed",
        route("HTTPRoute", [{"parentRef": "x", "conditions": 3}, 7]),
        P,
        "no Accepted condition yet",
    ),
    (
        "backendtlspolicy accepted",
        obj(
            "gateway.networking.k8s.io/v1alpha3",
            "BackendTLSPolicy",
            age=2,
            status={
                "ancestors": [
                    {
                        "ancestorRef": {"name": "public", "namespace": "infra"},
                        "conditions": [cond("Accepted", "True")],
                    }
                ]
            },
        ),
        H,
        "accepted by Gateway infra/public",
    ),
    ("referencegrant", obj("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"), H, "no status to check"),
]

CASES: list[Case] = GATEWAYS + ROUTES


@pytest.mark.parametrize(("name", "live", "status", "reason"), CASES, ids=ids(CASES))
def test_gatewayapi(name: str, live: dict[str, Any], status: Any, reason: str) -> None:
    check(live, status, reason)
