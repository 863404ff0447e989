package registry

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"k8s.io/client-go/rest"

	"github.com/tracebloc/image-refresh/refresher/kube"
)

// The child of TestClientsUseTheEnvironmentProxy: its proxy environment is set before the
// process makes any request (net/http reads it once per process).
const (
	proxyChildEnv  = "IMAGE_REFRESH_PROXY_CHILD" // the digest the child expects
	proxiedHost    = "10.11.12.13:5000"          // RFC 1918: go-containerregistry falls back to plain HTTP
	tlsHost        = "registry.example"          // HTTPS only: a CONNECT through the proxy
	bypassedHost   = "10.99.0.1:5000"            // in NO_PROXY
	apiServer      = "10.11.12.14:6443"          // plain HTTP
	tlsAPIServer   = "10.11.12.15:6443"          // HTTPS, as the in-cluster config's
	bypassedServer = "10.99.0.2:6443"            // in NO_PROXY
	noProxy        = "kubernetes.default.svc,10.99.0.0/16"
)

// TestClientsUseTheEnvironmentProxy: the refresher's registry client (NewResolver's default
// transport) and Kubernetes client send every request to a non-loopback host through the proxy
// HTTP_PROXY / HTTPS_PROXY name, and none to a host NO_PROXY lists. The lookups run in a child
// process whose environment names a recording proxy that serves an in-memory registry.
func TestClientsUseTheEnvironmentProxy(t *testing.T) {
	if want := os.Getenv(proxyChildEnv); want != "" {
		proxyChild(t, want)
		return
	}
	if testing.Short() {
		t.Skip("runs a child process")
	}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	var mu sync.Mutex
	var seen []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.RequestURI)
		mu.Unlock()
		switch {
		case r.Method == http.MethodConnect:
			http.Error(w, "tunnels refused", http.StatusForbidden)
		case r.URL.Host == proxiedHost || r.URL.Host == "": // "": the push below, sent directly
			reg.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	defer proxy.Close()

	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := name.NewTag(proxy.Listener.Addr().String() + "/team/app:prod")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(direct, img); err != nil {
		t.Fatal(err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	seen = nil
	mu.Unlock()

	cmd := exec.Command(os.Args[0], "-test.run=^TestClientsUseTheEnvironmentProxy$", "-test.v")
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains([]string{"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "REQUEST_METHOD"}, strings.ToUpper(k))
	})
	cmd.Env = append(cmd.Env, proxyChildEnv+"="+digest.String(),
		"HTTP_PROXY="+proxy.URL, "HTTPS_PROXY="+proxy.URL, "NO_PROXY="+noProxy)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{
		"GET http://" + proxiedHost + "/v2/",
		"HEAD http://" + proxiedHost + "/v2/team/app/manifests/prod",
		"CONNECT " + tlsHost + ":443",
		"GET http://" + apiServer + "/apis/apps/v1/namespaces/tracebloc/deployments/stg-jobs-manager",
		"CONNECT " + tlsAPIServer,
	} {
		if !slices.ContainsFunc(seen, func(s string) bool { return s == want || strings.HasPrefix(s, want+"?") }) {
			t.Errorf("the proxy did not see %q; it saw:\n  %s", want, strings.Join(seen, "\n  "))
		}
	}
	for _, s := range seen {
		if strings.Contains(s, "10.99.") {
			t.Errorf("the proxy saw %q, a host NO_PROXY %q lists", s, noProxy)
		}
	}
}

// proxyChild resolves through the proxy its environment names and reaches the API servers.
func proxyChild(t *testing.T, want string) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r, err := NewResolver(Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res := r.Resolve(ctx, []string{proxiedHost + "/team/app:prod", tlsHost + "/team/app:prod", bypassedHost +
		"/team/app:prod"})
	if res[0].Err != nil || res[0].Digest != want {
		t.Errorf("through the proxy: digest %q, error %v; want %s", res[0].Digest, res[0].Err, want)
	}
	if res[1].Err == nil {
		t.Errorf("%s resolved, want the proxy's refused CONNECT", tlsHost)
	}
	if res[2].Err == nil {
		t.Errorf("%s resolved; nothing serves it", bypassedHost)
	}
	for _, cfg := range []*rest.Config{
		{Host: "http://" + apiServer},
		{Host: "https://" + tlsAPIServer, TLSClientConfig: rest.TLSClientConfig{Insecure: true}},
		{Host: "https://" + bypassedServer, TLSClientConfig: rest.TLSClientConfig{Insecure: true}},
	} {
		c, err := kube.NewForConfig(cfg, "image-refresh/test")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if _, err := c.GetDeployment(ctx, "tracebloc", "stg-jobs-manager"); err == nil {
			t.Errorf("%s: got a Deployment; nothing serves one", cfg.Host)
		}
		cancel()
	}
}
