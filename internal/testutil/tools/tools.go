// Package tools locates the real components e2e/tools/build.sh builds (helm v3 and v4,
// kube-apiserver, kube-controller-manager, kubectl, etcd, docker-registry; for the node kubelet,
// kube-proxy, kube-scheduler, containerd, runc, the CNI plugins and iptables; cosign v3 and v2)
// at the versions of e2e/tools/versions.env, for the tests of any package: test support lives
// here, so nothing outside e2e/ links e2e/.
package tools

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Names of the tools, as build.sh lays them out: <dir>/<step>-<version>/<binary>.
const (
	Helm3                 = "helm3"
	Helm4                 = "helm4"
	Etcd                  = "etcd"
	KubeAPIServer         = "kube-apiserver"
	KubeControllerManager = "kube-controller-manager"
	Kubectl               = "kubectl"
	DockerRegistry        = "docker-registry"

	Kubelet        = "kubelet"
	KubeProxy      = "kube-proxy"
	KubeScheduler  = "kube-scheduler"
	Containerd     = "containerd"
	ContainerdShim = "containerd-shim-runc-v2"
	Ctr            = "ctr"
	Runc           = "runc"
	// CNIBridge is one of the CNI plugins; its directory holds the others (loopback,
	// host-local, portmap).
	CNIBridge = "bridge"
	Iptables  = "iptables"

	// Cosign3 (sigstore bundle by default) and Cosign2 (.sig tag by default): the real cosign CLI.
	Cosign3 = "cosign3"
	Cosign2 = "cosign2"
)

// Node is every tool the real node needs.
var Node = []string{Kubelet, KubeProxy, KubeScheduler, Containerd, ContainerdShim, Ctr, Runc, CNIBridge, Iptables}

// Signing is the real cosign CLIs, whose verdicts the signature gate is compared with.
var Signing = []string{Cosign3, Cosign2}

// All is every tool build.sh provides.
var All = []string{Helm3, Helm4, Etcd, KubeAPIServer, KubeControllerManager, Kubectl, DockerRegistry}

// Dir is where build.sh caches the tools: $IMAGE_REFRESH_TOOLS or ~/.cache/image-refresh-tools.
func Dir() string {
	if d := os.Getenv("IMAGE_REFRESH_TOOLS"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "image-refresh-tools")
	}
	return filepath.Join(home, ".cache", "image-refresh-tools")
}

// versionsFile is e2e/tools/versions.env from this package's directory: build.sh reads it too.
const versionsFile = "../../../e2e/tools/versions.env"

// Versions reads e2e/tools/versions.env, the one place the tool versions are recorded.
func Versions() (map[string]string, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return nil, fmt.Errorf("locating versions.env: no caller information")
	}
	f, err := os.Open(filepath.Join(filepath.Dir(self), filepath.FromSlash(versionsFile)))
	if err != nil {
		return nil, fmt.Errorf("reading tool versions: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("versions.env: malformed line %q", line)
		}
		out[k] = v
	}
	return out, sc.Err()
}

// Lookup returns the path of a built tool, or an error telling how to build it.
func Lookup(name string) (string, error) {
	v, err := Versions()
	if err != nil {
		return "", err
	}
	step, version := name, ""
	switch name {
	case Helm3:
		version = v["HELM3_VERSION"]
	case Helm4:
		version = v["HELM4_VERSION"]
	case Etcd:
		version = v["ETCD_VERSION"]
	case KubeAPIServer, KubeControllerManager, Kubectl:
		step, version = "kubernetes", v["KUBERNETES_VERSION"]
	case DockerRegistry:
		version = "debian"
	case Kubelet, KubeProxy, KubeScheduler:
		step, version = "kubernetes-node", v["KUBERNETES_VERSION"]
	case Containerd, ContainerdShim, Ctr:
		step, version = "containerd", v["CONTAINERD_VERSION"]
	case Runc:
		version = v["RUNC_VERSION"]
	case CNIBridge:
		step, version = "cni-plugins", v["CNI_PLUGINS_VERSION"]
	case Iptables:
		version = "debian"
	case Cosign3:
		version = v["COSIGN3_VERSION"]
	case Cosign2:
		version = v["COSIGN2_VERSION"]
	default:
		return "", fmt.Errorf("unknown tool %q", name)
	}
	dir := filepath.Join(Dir(), step+"-"+version)
	if _, err := os.Stat(filepath.Join(dir, ".done")); err != nil {
		return "", fmt.Errorf("%s %s is not built in %s: run `make tools` (e2e/tools/build.sh)", name, version, Dir())
	}
	return filepath.Join(dir, name), nil
}

// Require returns the path of a built tool for a test that runs real components. Under
// `go test -short` such tests are skipped; otherwise a missing tool fails the test, so
// `make test` can never pass without having run them.
func Require(t testing.TB, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("real %s: skipped in -short mode", name)
	}
	p, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
