package cmd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/tracebloc/image-refresh/internal/cli"
	"github.com/tracebloc/image-refresh/internal/version"
	"github.com/tracebloc/image-refresh/refresher"
	"github.com/tracebloc/image-refresh/refresher/kube/clientset"
	"github.com/tracebloc/image-refresh/refresher/registry"
	"github.com/tracebloc/image-refresh/refresher/registry/registrytest"
)

var exampleConfig = filepath.Join("..", "..", "..", "testdata", "config", "refresh.yaml")

type harness struct {
	srv            *registrytest.Server
	kube           *fake.Clientset
	stdout, stderr bytes.Buffer
	// kubeconfig is what the command asked to connect with.
	kubeconfig string
}

func newHarness(t *testing.T, namespace string) *harness {
	t.Helper()
	h := &harness{srv: registrytest.New(t)}
	for _, ref := range []string{"docker.io/tracebloc/jobs-manager:prod", "docker.io/tracebloc/pods-monitor:prod",
		"ghcr.io/tracebloc/ingestor:prod"} {
		if _, err := h.srv.PushImage(ref); err != nil {
			t.Fatal(err)
		}
	}
	h.kube = fake.NewClientset(&appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "stg-jobs-manager", Namespace: namespace},
		// Replicas 0: the last rollout is complete, so a fill is not held back.
		Spec: appsv1.DeploymentSpec{Replicas: new(int32),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
				{Name: "api", Image: "docker.io/tracebloc/jobs-manager:prod", ImagePullPolicy: corev1.PullAlways},
				{Name: "pods-monitor", Image: "docker.io/tracebloc/pods-monitor:prod", ImagePullPolicy: corev1.PullAlways},
			}}}},
	})
	return h
}

func (h *harness) run(args ...string) int {
	return run(args, environment{
		kube: func(kubeconfig string) (refresher.Kube, string, error) {
			h.kubeconfig = kubeconfig
			return clientset.New(h.kube), "from-context", nil
		},
		registry: registry.Options{Transport: h.srv.Transport(), Keychain: authn.NewMultiKeychain()},
	}, &h.stdout, &h.stderr)
}

// run runs the refresher binary with env and args.
func run(args []string, env environment, stdout, stderr io.Writer) int {
	return cli.Run(context.Background(), newProgram(env), args, nil, stdout, stderr)
}

func (h *harness) patches() int {
	n := 0
	for _, a := range h.kube.Actions() {
		if _, ok := a.(k8stesting.PatchAction); ok {
			n++
		}
	}
	return n
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "refresh.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestVersion(t *testing.T) {
	h := newHarness(t, "tracebloc")
	if code := h.run("--version"); code != cli.ExitOK || !strings.Contains(h.stdout.String(), version.Version) {
		t.Errorf("--version: exit %d, stdout %q", code, h.stdout.String())
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	invalid := writeConfig(t, "apiVersion: image-refresh.io/v1alpha1\nkind: RefreshConfig\nmetadata: {name: r}\n"+
		"spec:\n  images:\n  - {name: a, repository: ghcr.io/x/a, action: set-env, target: {name: d, container: c}, "+
		"annotation: x.io/a}\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no config", nil, "--config is required"},
		{"unknown flag", []string{"--config", exampleConfig, "--bogus"}, "unknown flag: --bogus"},
		{"argument", []string{"--config", exampleConfig, "extra"}, `unexpected arguments [\"extra\"]`},
		{"missing file", []string{"--config", "/nonexistent/refresh.yaml"}, "reading refresh config"},
		{"invalid config", []string{"--config", invalid}, "spec.images[0] (a).env: required"},
		{"namespace contradicts the config", []string{"--config", exampleConfig, "--namespace", "other"},
			`--namespace \"other\" contradicts metadata.namespace \"tracebloc\"`},
		{"timeout", []string{"--config", exampleConfig, "--timeout", "0s"}, "--timeout must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "tracebloc")
			if code := h.run(tc.args...); code != cli.ExitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, cli.ExitUsage, h.stderr.String())
			}
			if !strings.Contains(h.stderr.String(), tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, h.stderr.String())
			}
			if len(h.srv.Requests()) != 0 || len(h.kube.Actions()) != 0 {
				t.Error("a usage error reached the registry or the cluster")
			}
		})
	}
}

func TestRunExit0(t *testing.T) {
	h := newHarness(t, "tracebloc")
	if code := h.run("--config", exampleConfig, "--kubeconfig", "/k"); code != cli.ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, h.stderr.String())
	}
	if h.kubeconfig != "/k" {
		t.Errorf("connected with kubeconfig %q", h.kubeconfig)
	}
	if h.patches() != 1 {
		t.Errorf("%d patches, want 1", h.patches())
	}
	for _, want := range []string{`"msg":"image checked"`, `"image":"ingestor"`, `"decision":"fill"`,
		`"msg":"run complete"`} {
		if !strings.Contains(h.stderr.String(), want) {
			t.Errorf("stderr lacks %s:\n%s", want, h.stderr.String())
		}
	}
	if h.stdout.Len() != 0 {
		t.Errorf("stdout outside a dry run: %q", h.stdout.String())
	}
}

func TestRunExit1WhenAnImageFails(t *testing.T) {
	h := newHarness(t, "tracebloc")
	h.srv.SetManifestStatus("ghcr.io/tracebloc/ingestor", http.StatusTooManyRequests)
	if code := h.run("--config", exampleConfig); code != cli.ExitFailed {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, cli.ExitFailed, h.stderr.String())
	}
	if h.patches() != 1 {
		t.Errorf("%d patches, want the other images applied in 1", h.patches())
	}
	if !strings.Contains(h.stderr.String(), `"msg":"refresher failed"`) || !strings.Contains(h.stderr.String(),
		"image ingestor") {
		t.Errorf("stderr:\n%s", h.stderr.String())
	}
}

func TestRunExit1WhenTheClusterIsUnreachable(t *testing.T) {
	h := newHarness(t, "tracebloc")
	code := run([]string{"--config", exampleConfig}, environment{
		kube: func(string) (refresher.Kube, string, error) {
			return nil, "", errors.New("in-cluster config: not in a cluster")
		},
	}, &h.stdout, &h.stderr)
	if code != cli.ExitFailed || !strings.Contains(h.stderr.String(), "not in a cluster") {
		t.Errorf("exit %d; stderr:\n%s", code, h.stderr.String())
	}
}

func TestRunBadKubeconfigExit2(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"--config", exampleConfig, "--kubeconfig", filepath.Join(t.TempDir(), "missing")},
		environment{kube: connect}, &stdout, &stderr)
	if code != cli.ExitUsage || !strings.Contains(stderr.String(), "loading kubeconfig") {
		t.Errorf("exit %d; stderr:\n%s", code, stderr.String())
	}
}

func TestDryRunPrintsThePlanAndWritesNothing(t *testing.T) {
	h := newHarness(t, "tracebloc")
	if code := h.run("--config", exampleConfig, "--dry-run"); code != cli.ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, h.stderr.String())
	}
	if h.patches() != 0 {
		t.Errorf("dry run sent %d patches", h.patches())
	}
	for _, want := range []string{"IMAGE", "jobs-manager", "record", "ingestor", "fill",
		"patch Deployment tracebloc/stg-jobs-manager: {"} {
		if !strings.Contains(h.stdout.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, h.stdout.String())
		}
	}
}

func TestNamespaceDefaults(t *testing.T) {
	noNamespace := writeConfig(t, `apiVersion: image-refresh.io/v1alpha1
kind: RefreshConfig
metadata: {name: r}
spec:
  images:
  - {name: jobs-manager, repository: docker.io/tracebloc/jobs-manager, tag: prod, action: rollout-restart, target: `+
		`{name: stg-jobs-manager, container: api}, annotation: tracebloc.io/jm}
`)
	t.Run("from --namespace", func(t *testing.T) {
		h := newHarness(t, "flagged")
		if code := h.run("--config", noNamespace, "--namespace", "flagged"); code != cli.ExitOK {
			t.Fatalf("exit %d; stderr:\n%s", code, h.stderr.String())
		}
		if !strings.Contains(h.stderr.String(), `"target":"flagged/stg-jobs-manager"`) {
			t.Errorf("stderr:\n%s", h.stderr.String())
		}
	})
	t.Run("from the cluster connection", func(t *testing.T) {
		h := newHarness(t, "from-context")
		if code := h.run("--config", noNamespace); code != cli.ExitOK {
			t.Fatalf("exit %d; stderr:\n%s", code, h.stderr.String())
		}
		if !strings.Contains(h.stderr.String(), `"target":"from-context/stg-jobs-manager"`) {
			t.Errorf("stderr:\n%s", h.stderr.String())
		}
	})
	t.Run("equal to the config's", func(t *testing.T) {
		h := newHarness(t, "tracebloc")
		if code := h.run("--config", exampleConfig, "--namespace", "tracebloc"); code != cli.ExitOK {
			t.Errorf("exit %d; stderr:\n%s", code, h.stderr.String())
		}
	})
}

func TestAllPinnedNeedsNoCluster(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	pinned := writeConfig(t, `apiVersion: image-refresh.io/v1alpha1
kind: RefreshConfig
metadata: {name: r, namespace: tracebloc}
spec:
  images:
  - {name: a, repository: ghcr.io/x/a, digest: "`+digest+`", action: rollout-restart, target: {name: d, container: `+
		`c}, annotation: x.io/a}
`)
	var stdout, stderr bytes.Buffer
	code := run([]string{"--config", pinned}, environment{
		kube: func(string) (refresher.Kube, string, error) { return nil, "", errors.New("must not connect") },
	}, &stdout, &stderr)
	if code != cli.ExitOK || !strings.Contains(stderr.String(), `"decision":"pinned"`) {
		t.Errorf("exit %d; stderr:\n%s", code, stderr.String())
	}
}
