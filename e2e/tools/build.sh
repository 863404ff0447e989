#!/usr/bin/env bash
# Builds (or reuses) the real components the tests need, at the versions in versions.env:
# helm v3 and v4, cosign v3 and v2, kube-apiserver, kube-controller-manager, kubectl, etcd; installs Debian's
# docker-registry; and for the node kubelet, kube-proxy, kube-scheduler, containerd, runc, the CNI
# plugins and Debian's iptables. Each step lands in $IMAGE_REFRESH_TOOLS/<name>-<version>/ and is rebuilt
# only when that directory lacks its .done marker. Prints one line per tool with the time it
# took; a failing step prints the tail of its log (kept in <name>-<version>.log).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
tools=${IMAGE_REFRESH_TOOLS:-$HOME/.cache/image-refresh-tools}
mkdir -p "$tools"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

step() { # name version function
  local name=$1 version=$2 fn=$3
  local dir="$tools/$name-$version" log="$tools/$name-$version.log"
  if [ -f "$dir/.done" ]; then
    echo "tools: $name $version cached ($dir)"
    return
  fi
  local start=$SECONDS
  echo "tools: building $name $version (log: $log) ..."
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  if ! "$fn" "$dir.tmp" >"$log" 2>&1; then
    echo "tools: $name $version FAILED after $((SECONDS - start))s; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  touch "$dir.tmp/.done"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  echo "tools: $name $version built in $((SECONDS - start))s"
}

build_helm() { # major version out
  GOBIN="$3" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v$1/cmd/helm@$2"
  mv "$3/helm" "$3/helm$1"
}
helm3() { build_helm 3 "$HELM3_VERSION" "$1"; }
helm4() { build_helm 4 "$HELM4_VERSION" "$1"; }

build_cosign() { # major version out
  GOBIN="$3" go install -trimpath -ldflags "-s -w" "github.com/sigstore/cosign/v$1/cmd/cosign@$2"
  mv "$3/cosign" "$3/cosign$1"
  "$3/cosign$1" version
}
cosign3() { build_cosign 3 "$COSIGN3_VERSION" "$1"; }
cosign2() { build_cosign 2 "$COSIGN2_VERSION" "$1"; }

etcd() {
  local m="$work/etcd"
  mkdir -p "$m"
  cat >"$m/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  cd "$m"
  go mod init etcd
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go mod tidy
  go build -trimpath -ldflags "-s -w" -o "$1/etcd" .
}

# k8s.io/kubernetes cannot be `go install`ed: build it from a throwaway module that replaces
# each staging module with its published version (v1.X.Y → v0.X.Y). The version ldflags make
# /version (and so Helm's kubeVersion checks) report the real version instead of v0.0.0.
# Writes the throwaway module in $work/k8s (once) and sets k8s_ldflags.
kubernetes_module() {
  local m="$work/k8s" v=$KUBERNETES_VERSION
  local minor=${v#v1.}
  minor=${minor%%.*}
  local staging="v0.${v#v1.}"
  k8s_ldflags="-s -w"
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ldflags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  [ -f "$m/go.sum" ] && return 0
  mkdir -p "$m"
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -n "$gomod" ] || { echo "cannot download k8s.io/kubernetes@$v" >&2; return 1; }
  {
    echo "module k8stools"
    echo "go $(sed -n 's/^go //p' "$gomod")"
    echo "require k8s.io/kubernetes $v"
    grep -E '^\s*k8s.io/[^ ]+ => ./staging/' "$gomod" | awk -v s="$staging" '{print "replace " $1 " => " $1 " " s}'
  } >"$m/go.mod"
  cat >"$m/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
  (cd "$m" && go mod tidy)
}

kubernetes() {
  kubernetes_module
  cd "$work/k8s"
  go build -trimpath -ldflags "$k8s_ldflags" -o "$1/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl
  "$1/kube-apiserver" --version
  "$1/kubectl" version --client
}

# kubelet, kube-proxy and kube-scheduler: the same throwaway module as the control plane (a
# step of its own, so adding the node does not invalidate the cached control-plane step).
kubernetes_node() {
  kubernetes_module
  cd "$work/k8s"
  go build -trimpath -ldflags "$k8s_ldflags" -o "$1/" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kube-scheduler
  "$1/kubelet" --version
}

containerd() {
  GOBIN="$1" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" -tags no_btrfs,no_devmapper,no_zfs \
    "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
  "$1/containerd" --version
}

# runc's go.mod has a replace, so it cannot be `go install`ed: build it from a throwaway module.
# cgo + libseccomp: containerd's RuntimeDefault seccomp profile needs it.
runc() {
  apt_install libseccomp-dev pkg-config
  local m="$work/runc"
  mkdir -p "$m"
  cat >"$m/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/opencontainers/runc"
GO
  cd "$m"
  go mod init runctools
  go get "github.com/opencontainers/runc@$RUNC_VERSION"
  go mod tidy
  CGO_ENABLED=1 go build -trimpath -tags seccomp -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" -o "$1/runc" github.com/opencontainers/runc
  "$1/runc" --version
}

cni() {
  local p=github.com/containernetworking/plugins/plugins
  GOBIN="$1" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
    "$p/main/bridge@$CNI_PLUGINS_VERSION" "$p/main/loopback@$CNI_PLUGINS_VERSION" \
    "$p/ipam/host-local@$CNI_PLUGINS_VERSION" "$p/meta/portmap@$CNI_PLUGINS_VERSION"
}

# iptables (nf_tables backend) for kube-proxy and the CNI bridge plugin.
node_packages() {
  apt_install iptables
  ln -sf "$(command -v iptables)" "$1/iptables"
}

apt_install() { # packages...
  local missing=() pkg
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

registry() {
  if ! command -v docker-registry >/dev/null; then
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends docker-registry
  fi
  ln -sf "$(command -v docker-registry)" "$1/docker-registry"
}

node_steps() {
  step iptables debian node_packages
  step containerd "$CONTAINERD_VERSION" containerd
  step runc "$RUNC_VERSION" runc
  step cni-plugins "$CNI_PLUGINS_VERSION" cni
  step kubernetes-node "$KUBERNETES_VERSION" kubernetes_node
}

only=${1:-all}
case $only in
  helm)
    step helm3 "$HELM3_VERSION" helm3
    step helm4 "$HELM4_VERSION" helm4
    ;;
  all)
    step docker-registry debian registry
    step helm3 "$HELM3_VERSION" helm3
    step helm4 "$HELM4_VERSION" helm4
    step etcd "$ETCD_VERSION" etcd
    step cosign3 "$COSIGN3_VERSION" cosign3
    step cosign2 "$COSIGN2_VERSION" cosign2
    step kubernetes "$KUBERNETES_VERSION" kubernetes
    node_steps
    ;;
  node)
    node_steps
    ;;
  cosign)
    step cosign3 "$COSIGN3_VERSION" cosign3
    step cosign2 "$COSIGN2_VERSION" cosign2
    ;;
  *)
    echo "usage: $0 [all|helm|node|cosign]" >&2
    exit 2
    ;;
esac
echo "tools: ready in $tools"
