// Package e2e is the smoke test of image-refresh on real parts: etcd, kube-apiserver and
// kube-controller-manager, a docker-registry behind a token server, Helm 3 and Helm 4, and
// the refresher and post-renderer built from this checkout. The scenarios are in the
// package's tests; `go test -short` skips them, otherwise they need the tools built by
// e2e/tools/build.sh (`make tools`). The harness they share with `make demo` is e2e/harness.
package e2e
