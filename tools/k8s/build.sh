#!/usr/bin/env bash
# Builds the devcluster's binaries (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# etcd, kwok), helm and an OCI registry from the Go module proxy, each once per version.
#
#   tools/k8s/build.sh LINK_DIR [argocd] [argo-rollouts] [flux]
#                                   build what is missing, then symlink every binary into LINK_DIR;
#                                   `argocd` adds Argo CD's controller, repo-server and cmp-server (make tools-argocd),
#                                   `argo-rollouts` Argo Rollouts' controller and kubectl plugin (make tools-rollouts),
#                                   `flux` Flux's helm-controller and source-controller (make bench-peers)
#
# Built binaries are cached in $MOORAGE_CACHE/bin/<component>-<version>/ (default ~/.cache/moorage),
# outside the repository. A component is rebuilt only when its version in tools/k8s/*/go.mod changes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
link_dir="${1:?usage: tools/k8s/build.sh LINK_DIR [argocd] [argo-rollouts] [flux]}"
shift
extras=" $* "
cache="${MOORAGE_CACHE:-$HOME/.cache/moorage}/bin"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"

# The version a wrapper module requires of its upstream module, e.g. "v1.37.2".
required_version() { # module_dir upstream_module
  awk -v m="$2" '$1 == "require" && $2 == m {print $3} $1 == m {print $2}' "$here/$1/go.mod" | head -1
}

# build COMPONENT VERSION LDFLAGS NAME=PACKAGE...
build() {
  local component="$1" version="$2" ldflags="$3"; shift 3
  local dest="$cache/$component-$version"
  if [[ ! -f "$dest/.complete" ]]; then
    echo "building $component $version (once; cached in $dest)" >&2
    local tmp="$dest.tmp.$$"
    rm -rf "$tmp" && mkdir -p "$tmp"
    local start=$SECONDS pair
    for pair in "$@"; do
      (cd "$here/$component" && go build -tags=selinux,notest -ldflags="$ldflags" -o "$tmp/${pair%%=*}" "${pair#*=}")
    done
    echo "$((SECONDS - start))" > "$tmp/.build-seconds"
    touch "$tmp/.complete"
    rm -rf "$dest" && mv "$tmp" "$dest"
  fi
  mkdir -p "$link_dir"
  for pair in "$@"; do ln -sfn "$dest/${pair%%=*}" "$link_dir/${pair%%=*}"; done
}

kube="$(required_version kubernetes k8s.io/kubernetes)"
minor="$(echo "$kube" | cut -d. -f2)"
kube_ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ld+=" -X $p.gitVersion=$kube -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  kube_ld+=" -X $p.gitCommit=0000000000000000000000000000000000000000 -X $p.gitTreeState=clean"
  kube_ld+=" -X $p.buildDate=1970-01-01T00:00:00Z"
done
build kubernetes "$kube" "$kube_ld" \
  kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
  kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
  kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
  kubectl=k8s.io/kubernetes/cmd/kubectl

etcd="$(required_version etcd go.etcd.io/etcd/server/v3)"
build etcd "$etcd" "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$etcd" etcd=go.etcd.io/etcd/server/v3

kwok="$(required_version kwok sigs.k8s.io/kwok)"
build kwok "$kwok" "-s -w" kwok=sigs.k8s.io/kwok/cmd/kwok
# Since v0.8.0 kwok embeds no default stages: take the "fast" node, pod and volume stages of the same
# release from the module cache (the devcluster passes each file with --config).
if [[ ! -d "$cache/kwok-$kwok/stages" ]]; then
  src="$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage"
  tmp="$cache/kwok-$kwok/stages.tmp.$$"
  mkdir -p "$tmp"
  cp "$src"/node/fast/node-initialize.yaml "$src"/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
     "$src"/pod/fast/pod-{ready,complete,delete}.yaml \
     "$src"/volume/fast/{pv-bind,pv-delete,pvc-provision,pvc-delete}.yaml "$tmp/"
  chmod 0644 "$tmp"/*.yaml
  mv "$tmp" "$cache/kwok-$kwok/stages"
fi

helm="$(required_version helm helm.sh/helm/v4)"
build helm "$helm" "-s -w -X helm.sh/helm/v4/internal/version.version=$helm" helm=helm.sh/helm/v4/cmd/helm

registry="$(required_version registry github.com/distribution/distribution/v3)"
build registry "$registry" "-s -w -X github.com/distribution/distribution/v3/version.version=$registry" \
  registry=github.com/distribution/distribution/v3/cmd/registry

# Argo CD v3.6 (its go.mod says go 1.27): the one multi-call binary, named after the components it is
# run as (it dispatches on argv[0]), plus its CRDs and base config from the module, as for kwok.
if [[ "$extras" == *" argocd "* ]]; then
  argocd="$(required_version argocd github.com/argoproj/argo-cd/v3)"
  argocd_ld="-s -w -X github.com/argoproj/argo-cd/v3/common.version=${argocd#v}"
  argocd_ld+=" -X github.com/argoproj/argo-cd/v3/common.buildDate=1970-01-01T00:00:00Z"
  GOTOOLCHAIN=go1.27.3 build argocd "$argocd" "$argocd_ld" argocd=github.com/argoproj/argo-cd/v3/cmd
  for name in argocd-application-controller argocd-repo-server argocd-cmp-server; do
    ln -sfn "$cache/argocd-$argocd/argocd" "$link_dir/$name"
  done
  if [[ ! -d "$cache/argocd-$argocd/manifests" ]]; then
    src="$(cd "$here/argocd" && GOTOOLCHAIN=go1.27.3 go list -m -f '{{.Dir}}' github.com/argoproj/argo-cd/v3)/manifests"
    tmp="$cache/argocd-$argocd/manifests.tmp.$$"
    mkdir -p "$tmp"
    cp "$src"/crds/application-crd.yaml "$src"/crds/appproject-crd.yaml \
       "$src"/base/config/argocd-cm.yaml "$src"/base/config/argocd-secret.yaml \
       "$src"/base/config/argocd-rbac-cm.yaml "$src"/base/config/argocd-cmd-params-cm.yaml "$tmp/"
    chmod 0644 "$tmp"/*.yaml
    mv "$tmp" "$cache/argocd-$argocd/manifests"
  fi
fi

# Argo Rollouts v1.10.1 (the charts' canary): the controller and the kubectl plugin, plus the CRDs from
# the module (manifests/crds), as for Argo CD.
if [[ "$extras" == *" argo-rollouts "* ]]; then
  module=github.com/argoproj/argo-rollouts
  rollouts="$(required_version argo-rollouts "$module")"
  build argo-rollouts "$rollouts" "-s -w -X $module/utils/version.version=${rollouts#v}" \
    rollouts-controller=$module/cmd/rollouts-controller kubectl-argo-rollouts=$module/cmd/kubectl-argo-rollouts
  if [[ ! -d "$cache/argo-rollouts-$rollouts/crds" ]]; then
    src="$(cd "$here/argo-rollouts" && go list -m -f '{{.Dir}}' "$module")/manifests/crds"
    tmp="$cache/argo-rollouts-$rollouts/crds.tmp.$$"
    mkdir -p "$tmp" && cp "$src"/*-crd.yaml "$tmp/" && chmod 0644 "$tmp"/*.yaml
    mv "$tmp" "$cache/argo-rollouts-$rollouts/crds"
  fi
fi

# Flux 2.9's helm-controller v1.6.4 and source-controller v1.9.6 (peers of the benchmarks only), with
# their CRDs from the modules (config/crd/bases), as for Argo CD.
if [[ "$extras" == *" flux "* ]]; then
  for controller in helm-controller source-controller; do
    module="github.com/fluxcd/$controller"
    version="$(required_version "flux-$controller" "$module")"
    build "flux-$controller" "$version" "-s -w" "$controller=$module"
    if [[ ! -d "$cache/flux-$controller-$version/crds" ]]; then
      src="$(cd "$here/flux-$controller" && go list -m -f '{{.Dir}}' "$module")/config/crd/bases"
      tmp="$cache/flux-$controller-$version/crds.tmp.$$"
      mkdir -p "$tmp" && cp "$src"/*.yaml "$tmp/" && chmod 0644 "$tmp"/*.yaml
      mv "$tmp" "$cache/flux-$controller-$version/crds"
    fi
  done
fi
