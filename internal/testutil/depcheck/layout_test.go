package depcheck_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/internal/testutil/depcheck"
)

const module = "github.com/tracebloc/image-refresh"

// Third-party trees the layout keeps out of packages.
const (
	clientGo           = "k8s.io/client-go/..."
	clientGoKubernetes = "k8s.io/client-go/kubernetes/..." // the clientset and every typed client
	clientGoInformers  = "k8s.io/client-go/informers/..."
	clientGoDynamic    = "k8s.io/client-go/dynamic/..."
	helm               = "helm.sh/helm/..."
	kustomize          = "sigs.k8s.io/kustomize/..." // kyaml
	ggcrRemote         = "github.com/google/go-containerregistry/pkg/v1/remote/..."
	// admissionAPI is the ValidatingAdmissionPolicy types: the guard's, never the refresher's.
	admissionAPI = "k8s.io/api/admissionregistration/v1"
)

// rule is one paragraph of CONTRIBUTING.md's Layout: what its packages may link of this module
// and what they must never link, tests excluded.
type rule struct {
	// pkgs are the packages the paragraph is about, relative to the module ("x/..." is x and
	// every package below it).
	pkgs []string
	// mayLink are the only packages of the module they may link (relative patterns), unless
	// anyOfModule.
	mayLink     []string
	anyOfModule bool
	// mustNotLink are packages they must never link, as import paths or trees.
	mustNotLink []string
	// links is a package they must link: proof that the listing is the graph that matters.
	links string
	// why is the paragraph's reason, for the failure message.
	why string
}

// The shared contract: the kernel the three binaries read, which links none of them.
var kernel = []string{"internal/config", "internal/contract", "internal/contract/guard", "internal/signature",
	"internal/manifest"}

// theBinariesLibraries are the libraries of the three binaries; the kernel never links them.
var theBinariesLibraries = []string{"refresher/...", "postrender/...", "chartcheck/..."}

// layout is CONTRIBUTING.md's Layout section. Every package of the module must fall under a
// rule, so a new package needs its paragraph and its rule. It reads: three binaries on one contract.
var layout = []rule{
	// The contract, shared by the three.
	{pkgs: []string{"internal/config"}, mayLink: []string{"internal/version"},
		mustNotLink: []string{clientGo, helm, kustomize},
		why:         "the config contract imports no Kubernetes client, no Helm, no kyaml"},
	{pkgs: []string{"internal/contract"}, mayLink: []string{"internal/config", "internal/version"},
		mustNotLink: []string{clientGo, helm, kustomize},
		why:         "the contract's rules are read by the refresher, postrender and chartcheck, and import none of them"},
	{pkgs: []string{"internal/contract/guard"}, mayLink: []string{"internal/config", "internal/contract",
		"internal/version"},
		mustNotLink: []string{clientGo, helm, kustomize}, links: admissionAPI,
		why: "the admission guard's policy, generated from the k8s.io/api types, for postrender and chartcheck"},
	{pkgs: []string{"internal/signature"}, mayLink: []string{},
		mustNotLink: []string{clientGo, ggcrRemote, helm, kustomize},
		links:       "github.com/google/go-containerregistry/pkg/name",
		why: "the signature gate's keys and checks over fetched bytes: standard library and go-containerregistry's " +
			"name, no registry client"},
	{pkgs: []string{"internal/manifest"}, mayLink: []string{"internal/config", "internal/contract", "internal/version"},
		mustNotLink: []string{clientGo, ggcrRemote, helm}, links: "sigs.k8s.io/kustomize/kyaml/yaml",
		why: "the model of a rendered release stream, shared by postrender and chartcheck, on kyaml"},

	// The refresher: one tick.
	{pkgs: []string{"refresher"}, mayLink: []string{"internal/config", "internal/contract", "internal/signature",
		"internal/version", "refresher/registry"},
		mustNotLink: []string{clientGoKubernetes, clientGoInformers, clientGoDynamic, helm, kustomize, admissionAPI},
		why:         "one tick reaches the cluster only through the refresher.Kube interface"},
	{pkgs: []string{"refresher/registry"}, mayLink: []string{"internal/config", "internal/signature", "internal/version"},
		mustNotLink: []string{clientGo, helm, kustomize},
		why:         "digest lookups on go-containerregistry"},
	{pkgs: []string{"refresher/kube"}, mayLink: []string{},
		mustNotLink: []string{clientGoKubernetes, clientGoInformers, clientGoDynamic}, links: "k8s.io/client-go/rest",
		why: "the refresher's REST client never links a clientset or typed client (every API group: 29 MB instead of 16 MB)"},
	{pkgs: []string{"refresher/kube/clientset", "refresher/registry/registrytest"}, mayLink: []string{},
		why: "test support: a clientset adapter and a fake registry"},

	// The post-renderer and chartcheck.
	{pkgs: []string{"postrender"}, mayLink: []string{"internal/config", "internal/contract", "internal/contract/guard",
		"internal/signature", "internal/manifest", "internal/version"},
		mustNotLink: []string{clientGo, ggcrRemote, helm}, links: "sigs.k8s.io/kustomize/kyaml/yaml",
		why: "the streaming post-renderer on kyaml links no Kubernetes client, registry client or Helm"},
	{pkgs: []string{"chartcheck"}, mayLink: []string{"internal/config", "internal/contract", "internal/contract/guard",
		"internal/signature", "internal/manifest", "internal/version", "postrender"},
		why: "render + post-render + the contract's checks; never the refresher's tick or clients"},

	// The three binaries.
	{pkgs: []string{"cmd/refresher", "cmd/refresher/cmd"},
		mayLink: []string{"cmd/refresher/cmd", "internal/cli", "internal/version", "internal/config", "internal/contract",
			"internal/signature", "refresher", "refresher/kube", "refresher/registry"},
		mustNotLink: []string{clientGoKubernetes, clientGoInformers, clientGoDynamic, helm, kustomize, admissionAPI},
		links:       "k8s.io/client-go/rest",
		why: "the refresher binary and image stay small (≤ 7 MiB compressed per platform): REST with a scheme of " +
			"its own, no Helm, no kyaml"},
	{pkgs: []string{"cmd/postrender", "cmd/postrender/cmd"},
		mayLink: []string{"cmd/postrender/cmd", "internal/cli", "internal/version", "internal/config",
			"internal/contract", "internal/contract/guard", "internal/signature", "internal/manifest", "postrender"},
		mustNotLink: []string{clientGo, ggcrRemote, helm}, links: "sigs.k8s.io/kustomize/kyaml/yaml",
		why: "the post-renderer binary reads and writes YAML, nothing more"},
	{pkgs: []string{"cmd/chartcheck", "cmd/chartcheck/cmd"},
		mayLink: []string{"cmd/chartcheck/cmd", "internal/cli", "internal/version", "internal/config", "internal/contract",
			"internal/contract/guard", "internal/signature", "internal/manifest", "chartcheck", "postrender"},
		why: "chartcheck's commands over the chartcheck library"},
	{pkgs: []string{"cmd/internal/imagebuild"}, mayLink: []string{"internal/cli", "internal/ociimage", "internal/version"},
		why: "builds the refresher image"},
	{pkgs: []string{"cmd/internal/benchtable"}, mayLink: []string{},
		why: "runs go test -bench"},

	// Leaves, test support, scenarios.
	{pkgs: []string{"internal/version", "internal/cli", "internal/ociimage"}, mayLink: []string{},
		why: "shared leaves: the version, the binaries' CLI run and exit codes, OCI images of Go programs"},
	{pkgs: []string{"internal/testutil/..."}, mayLink: []string{"internal/testutil/..."},
		why: "test support in one home"},
	{pkgs: []string{"e2e/..."}, anyOfModule: true,
		why: "scenarios on real parts use any library, test support included (the harness locates the real tools)"},
}

// Rules over every package of the module.
var (
	// testSupport is linked by tests only.
	testSupport = []string{"internal/testutil/...", "refresher/kube/clientset", "refresher/registry/registrytest"}
	// binaries are the only importers of internal/cli, and imported by no library.
	binaries = []string{"cmd/..."}
)

func abs(pattern string) string { return module + "/" + pattern }

func underAny(pkg string, patterns []string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return depcheck.Under(pkg, p) })
}

func absAll(patterns []string) []string {
	out := make([]string, len(patterns))
	for i, p := range patterns {
		out[i] = abs(p)
	}
	return out
}

// forbid fails t once per pattern of forbidden that pkg links, with the shortest chain.
func forbid(t *testing.T, g *depcheck.Graph, pkg string, forbidden []string, why string) {
	t.Helper()
	for _, bad := range forbidden {
		chains := g.Chains(pkg, func(p string) bool { return depcheck.Under(p, bad) })
		if len(chains) > 0 {
			t.Errorf("%s links %s (%s):\n  %s", pkg, bad, why, strings.Join(chains[0], "\n  "))
		}
	}
}

// TestLayout: every package of the module links only what its paragraph of CONTRIBUTING.md's
// Layout allows (tests excluded); a violation fails with the import chain.
func TestLayout(t *testing.T) {
	g := depcheck.Load(t, module+"/...")
	pkgs := g.Packages()
	if !slices.Contains(pkgs, module+"/refresher") {
		t.Fatalf("go list matched %d packages, not %s/refresher", len(pkgs), module)
	}
	for _, pkg := range pkgs {
		var rules []rule
		for _, r := range layout {
			if underAny(pkg, absAll(r.pkgs)) {
				rules = append(rules, r)
			}
		}
		if len(rules) == 0 {
			t.Errorf("%s is in no paragraph of CONTRIBUTING.md's Layout (add it there and to layout in this file)", pkg)
			continue
		}
		for _, r := range rules {
			if !r.anyOfModule {
				allowed := absAll(r.mayLink)
				for _, chain := range g.Chains(pkg,
					func(p string) bool { return strings.HasPrefix(p, module+"/") && !underAny(p, allowed) }) {
					t.Errorf("%s links %s of this module; it may link only %v (%s):\n  %s", pkg, chain[len(chain)-1], r.mayLink, r.why,
						strings.Join(chain, "\n  "))
				}
			}
			forbid(t, g, pkg, r.mustNotLink, r.why)
			if r.links != "" && len(g.Chains(pkg, func(p string) bool { return p == r.links })) == 0 {
				t.Errorf("%s does not link %s; is the rule about the right package? (%s)", pkg, r.links, r.why)
			}
		}

		if !underAny(pkg, absAll(testSupport)) && !depcheck.Under(pkg, abs("e2e/...")) {
			forbid(t, g, pkg, absAll(testSupport), "test support is for tests only")
		}
		if underAny(pkg, absAll(kernel)) {
			forbid(t, g, pkg, absAll(theBinariesLibraries), "the shared contract links none of the three binaries' libraries")
		}
		if !underAny(pkg, absAll(binaries)) {
			forbid(t, g, pkg, []string{abs("internal/cli"), abs("cmd/...")},
				"internal/cli is the binaries' run and exit codes; nothing depends on a binary's commands")
			if !depcheck.Under(pkg, abs("e2e/...")) {
				forbid(t, g, pkg, []string{abs("e2e/...")}, "no library depends on the end-to-end tests")
			}
		}
	}
	for _, r := range layout {
		for _, p := range r.pkgs {
			if !slices.ContainsFunc(pkgs, func(pkg string) bool { return depcheck.Under(pkg, abs(p)) }) {
				t.Errorf("the layout names %s, which is no package of the module (any more)", p)
			}
		}
	}
}
