package refresher

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/rest"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/signature"
	"github.com/tracebloc/image-refresh/internal/testutil/procstat"
	"github.com/tracebloc/image-refresh/refresher/kube"
	"github.com/tracebloc/image-refresh/refresher/registry"
	"github.com/tracebloc/image-refresh/refresher/registry/registrytest"
)

// benchLatency is the delay the loopback registry adds to every request (token, HEAD, /v2/).
const benchLatency = 50 * time.Millisecond

// benchFixture is n floating images in distinct repositories, each restarting its own
// Deployment: the config and the cluster objects of a first observation.
func benchFixture(n int) (*config.RefreshConfig, []*appsv1.Deployment) {
	cfg := &config.RefreshConfig{
		APIVersion: config.APIVersion, Kind: config.Kind,
		Metadata: config.ObjectMeta{Name: "bench", Namespace: "bench"},
	}
	var deployments []*appsv1.Deployment
	for i := range n {
		name := fmt.Sprintf("app-%03d", i)
		cfg.Spec.Images = append(cfg.Spec.Images, config.Image{
			Name: name, Repository: benchRepository(i), Tag: "prod", Action: config.ActionRolloutRestart,
			Target:     config.Target{Name: name, Container: "app"},
			Annotation: "tracebloc.io/last-refreshed-" + name + "-digest",
		})
		deployments = append(deployments, &appsv1.Deployment{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "bench", ResourceVersion: "1"},
			Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "app", Image: benchRepository(i) +
					":prod", ImagePullPolicy: corev1.PullAlways}},
			}}},
		})
	}
	cfg.Default()
	return cfg, deployments
}

func benchRepository(i int) string { return fmt.Sprintf("ghcr.io/bench/app-%03d", i) }

// benchOptions reaches the API server over HTTP with client-go, as the CronJob does.
func benchOptions(apiServerURL string, transport http.RoundTripper, concurrency int) (Options, error) {
	client, err := kube.NewForConfig(&rest.Config{Host: apiServerURL}, "image-refresh-bench")
	if err != nil {
		return Options{}, fmt.Errorf("creating Kubernetes client: %w", err)
	}
	return Options{
		Kube:     client,
		Registry: registry.Options{Transport: transport, Keychain: authn.NewMultiKeychain(), Concurrency: concurrency},
		Logger:   slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}, nil
}

// apiServer is a minimal Kubernetes API serving Deployments — GET and strategic-merge PATCH
// — so benchmarks run client-go's real REST path; the fake clientset spends milliseconds of
// bookkeeping per patch, which would swamp what is measured.
type apiServer struct {
	srv     *httptest.Server
	mu      sync.Mutex
	objects map[string][]byte // namespace/name → JSON
}

func startAPIServer(tb testing.TB) *apiServer {
	s := &apiServer{}
	s.srv = httptest.NewServer(s)
	tb.Cleanup(s.srv.Close)
	return s
}

// reset stores exactly deployments.
func (s *apiServer) reset(tb testing.TB, deployments []*appsv1.Deployment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects = map[string][]byte{}
	for _, d := range deployments {
		data, err := json.Marshal(d)
		if err != nil {
			tb.Fatal(err)
		}
		s.objects[d.Namespace+"/"+d.Name] = data
	}
}

func (s *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// /apis/apps/v1/namespaces/{namespace}/deployments/{name}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	// POST /apis/events.k8s.io/v1/namespaces/{namespace}/events: accepted, as the API server does.
	if r.Method == http.MethodPost && len(parts) == 6 && parts[1] == "events.k8s.io" && parts[5] == "events" {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(body)
		return
	}
	if len(parts) != 7 ||
		strings.Join([]string{parts[0], parts[1], parts[2], parts[3], parts[5]}, "/") !=
			"apis/apps/v1/namespaces/deployments" {
		http.NotFound(w, r)
		return
	}
	key := parts[4] + "/" + parts[6]
	s.mu.Lock()
	defer s.mu.Unlock()
	current, ok := s.objects[key]
	if !ok {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodGet:
	case http.MethodPatch:
		if r.Header.Get("Content-Type") != string(types.StrategicMergePatchType) {
			http.Error(w, "want a strategic-merge patch", http.StatusUnsupportedMediaType)
			return
		}
		patch, err := io.ReadAll(r.Body)
		if err == nil {
			current, err = strategicpatch.StrategicMergePatch(current, patch, appsv1.Deployment{})
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		s.objects[key] = current
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(current)
}

// startBenchRegistry serves n pushed images with benchLatency on every request.
func startBenchRegistry(tb testing.TB, n int) *registrytest.Server {
	srv := registrytest.New(tb)
	for i := range n {
		if _, err := srv.PushImage(benchRepository(i) + ":prod"); err != nil {
			tb.Fatal(err)
		}
	}
	srv.SetLatency(benchLatency)
	return srv
}

// BenchmarkRun is one tick over 1, 20 and 200 floating images against a registry 50 ms away,
// at the default concurrency and sequentially (concurrency 1) as the baseline. Besides wall
// time per tick (ns/op) it reports requests per image and, at the default concurrency, the
// peak RSS of the refresher binary running one tick (peak-MiB).
func BenchmarkRun(b *testing.B) {
	for _, n := range []int{1, 20, 200} {
		for _, concurrency := range []int{registry.DefaultConcurrency, 1} {
			b.Run(fmt.Sprintf("images=%d/concurrency=%d", n, concurrency), func(b *testing.B) {
				srv := startBenchRegistry(b, n)
				api := startAPIServer(b)
				cfg, deployments := benchFixture(n)
				srv.ResetRequests()
				b.ResetTimer()
				for range b.N {
					b.StopTimer()
					api.reset(b, deployments) // every tick is a first observation
					opts, err := benchOptions(api.srv.URL, srv.Transport(), concurrency)
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					report, err := Run(context.Background(), cfg, opts)
					if err != nil || report.Failed() {
						b.Fatalf("run: %v %v", err, report.Err())
					}
				}
				b.StopTimer()
				requests := srv.Requests()
				b.ReportMetric(float64(len(requests))/float64(n*b.N), "requests/image")
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "wall-ms")
				if concurrency == registry.DefaultConcurrency {
					api.reset(b, deployments)
					b.ReportMetric(binaryPeakRSS(b, srv, api, cfg), "peak-MiB")
				}
			})
		}
	}
}

// binaryPeakRSS runs one tick of the real refresher binary (built as `make build` does) over
// the n images and returns its peak resident set size in MiB. The binary reaches the loopback
// registry as it would the real ones: through HTTPS_PROXY (a CONNECT proxy that tunnels every
// host to the fake) and trusting its certificate through SSL_CERT_FILE.
func binaryPeakRSS(b *testing.B, srv *registrytest.Server, api *apiServer, cfg *config.RefreshConfig) float64 {
	bin := buildRefresher(b)
	dir := b.TempDir()
	files := map[string][]byte{
		"ca.pem": srv.CertPEM(),
		"kubeconfig": []byte(
			"apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"" + api.srv.URL + "\"}}]\n" +
				"users: [{name: u, user: {}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n",
		),
	}
	var err error
	if files["refresh.yaml"], err = cfg.Marshal(); err != nil {
		b.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	proxy := httptest.NewServer(connectProxy(srv.Addr()))
	defer proxy.Close()

	cmd := exec.Command(
		bin,
		"--config",
		filepath.Join(dir, "refresh.yaml"),
		"--kubeconfig",
		filepath.Join(dir, "kubeconfig"),
	)
	cmd.Env = []string{
		"HOME=" + dir, "DOCKER_CONFIG=" + filepath.Join(dir, "docker"),
		"HTTPS_PROXY=" + proxy.URL, "SSL_CERT_FILE=" + filepath.Join(dir, "ca.pem"),
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	usage, err := procstat.Run(cmd)
	if err != nil {
		b.Fatalf("refresher: %v\n%s", err, out.String())
	}
	return usage.PeakMiB
}

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildRefresher builds cmd/refresher once per test binary (removed by TestMain), with the
// Makefile's flags.
func buildRefresher(b *testing.B) string {
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "image-refresh-bench")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "refresher")
		out, err := exec.Command(
			"go",
			"build",
			"-trimpath",
			"-ldflags",
			"-s -w",
			"-o",
			binPath,
			"github.com/tracebloc/image-refresh/cmd/refresher",
		).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	return binPath
}

// connectProxy tunnels every CONNECT to addr, whatever host it names.
func connectProxy(addr string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		upstream, err := net.Dial("tcp", addr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer upstream.Close()
		client, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer client.Close()
		if _, err := client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
			return
		}
		go func() { _, _ = io.Copy(upstream, client) }()
		_, _ = io.Copy(client, upstream)
	})
}

// requestsFixture is a registry with n images at :prod, an API server and the config and
// Deployments of those n images (not yet served: the caller resets the API server with them).
func requestsFixture(
	t *testing.T,
	n int,
) (*registrytest.Server, *apiServer, *config.RefreshConfig, []*appsv1.Deployment) {
	t.Helper()
	srv := registrytest.New(t)
	for i := range n {
		if _, err := srv.PushImage(benchRepository(i) + ":prod"); err != nil {
			t.Fatal(err)
		}
	}
	cfg, deployments := benchFixture(n)
	return srv, startAPIServer(t), cfg, deployments
}

// TestRequestsPerImage counts what a tick costs: exactly one HEAD and at most one token
// request per image, plus one version check per registry; with spec.verification (subtest
// verification) a signed new digest adds exactly 3 GETs, nothing else does.
func TestRequestsPerImage(t *testing.T) {
	const n = 20
	srv, api, cfg, deployments := requestsFixture(t, n)
	api.reset(t, deployments)
	opts, err := benchOptions(api.srv.URL, srv.Transport(), registry.DefaultConcurrency)
	if err != nil {
		t.Fatal(err)
	}
	report, err := Run(context.Background(), cfg, opts)
	if err != nil || report.Failed() {
		t.Fatalf("run: %v %v", err, report.Err())
	}

	heads, tokens := map[string]int{}, map[string]int{}
	pings := 0
	for _, r := range srv.Requests() {
		switch {
		case r.IsManifest(http.MethodHead):
			heads[r.Path]++
		case r.IsToken():
			tokens[fmt.Sprint(r.Query["scope"])]++
		case r.IsPing():
			pings++
		default:
			t.Errorf("unexpected request %s %s%s", r.Method, r.Host, r.Path)
		}
	}
	for i := range n {
		path := fmt.Sprintf("/v2/bench/app-%03d/manifests/prod", i)
		scope := fmt.Sprintf("[repository:bench/app-%03d:pull]", i)
		if heads[path] != 1 {
			t.Errorf("image %d: %d HEADs, want exactly 1", i, heads[path])
		}
		if tokens[scope] > 1 {
			t.Errorf("image %d: %d token requests, want at most 1", i, tokens[scope])
		}
	}
	if len(heads) != n || len(tokens) > n {
		t.Errorf("HEADs for %d paths, tokens for %d scopes; want %d images", len(heads), len(tokens), n)
	}
	if pings != 1 {
		t.Errorf("%d version checks of the one registry, want 1", pings)
	}

	t.Run("verification", testRequestsWithVerification)
}

// tickRequests is what one tick asked the fake registry: per repository (bench/app-NNN) its
// manifest HEADs, token requests and other GETs (the signature gate's discovery), and the
// version checks.
type tickRequests struct {
	heads, tokens, gets map[string]int
	pings               int
}

func countTickRequests(t *testing.T, srv *registrytest.Server) tickRequests {
	t.Helper()
	c := tickRequests{heads: map[string]int{}, tokens: map[string]int{}, gets: map[string]int{}}
	for _, r := range srv.Requests() {
		switch {
		case r.IsManifest(http.MethodHead):
			repo, _, _ := strings.Cut(strings.TrimPrefix(r.Path, "/v2/"), "/manifests/")
			c.heads[repo]++
		case r.IsToken():
			for _, scope := range r.Query["scope"] {
				c.tokens[strings.TrimSuffix(strings.TrimPrefix(scope, "repository:"), ":pull")]++
			}
		case r.IsPing():
			c.pings++
		case r.Method == http.MethodGet:
			repo := strings.TrimPrefix(r.Path, "/v2/")
			for _, kind := range []string{"/manifests/", "/blobs/", "/referrers/"} {
				repo, _, _ = strings.Cut(repo, kind)
			}
			c.gets[repo]++
		default:
			t.Errorf("unexpected request %s %s%s", r.Method, r.Host, r.Path)
		}
	}
	return c
}

// testRequestsWithVerification is TestRequestsPerImage with spec.verification: the signature
// gate costs GETs only for a digest a change would apply. A first observation and a steady
// tick cost exactly what they cost without it (no GET); a new digest signed as cosign 2 (and
// cosign 3 --new-bundle-format=false) writes it — the .sig tag, the layout the fake registry
// writes — costs 3 GETs (the absent referrers fallback tag, the .sig manifest, its payload);
// an unsigned one 3 (the fallback tag, the .sig tag and the referrers API, all absent); the
// refused digest none on the following tick. Tokens and the version check are the lookup's.
func testRequestsWithVerification(t *testing.T) {
	const n = 20
	const signed, unsigned = 5, 5 // images 0–4 get a new signed digest, 5–9 an unsigned one
	srv, api, cfg, deployments := requestsFixture(t, n)
	cfg.Spec.Verification = &config.Verification{KeysConfigMap: "keys", RecheckAfter: config.Duration(time.Hour)}
	for _, d := range deployments { // rolled out, so a change does not wait
		d.Status = appsv1.DeploymentStatus{Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
	}
	api.reset(t, deployments)
	key := newTestKey(t, "release.pub")
	repo := func(i int) string { return fmt.Sprintf("bench/app-%03d", i) }

	// tick runs one tick and checks its requests: per image one HEAD, one token, gets[i] GETs
	// (0 when absent), one version check; it returns the report.
	tick := func(what string, gets map[int]int) Report {
		t.Helper()
		opts, err := benchOptions(api.srv.URL, srv.Transport(), registry.DefaultConcurrency)
		if err != nil {
			t.Fatal(err)
		}
		opts.Keys = []signature.PublicKey{key.pub}
		srv.ResetRequests()
		report, err := Run(context.Background(), cfg, opts)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		c := countTickRequests(t, srv)
		for i := range n {
			if c.heads[repo(i)] != 1 || c.tokens[repo(i)] != 1 || c.gets[repo(i)] != gets[i] {
				t.Errorf(
					"%s: image %d: %d HEADs, %d tokens, %d GETs; want 1, 1, %d",
					what,
					i,
					c.heads[repo(i)],
					c.tokens[repo(i)],
					c.gets[repo(i)],
					gets[i],
				)
			}
		}
		if len(c.heads) != n || len(c.tokens) != n || c.pings != 1 {
			t.Errorf(
				"%s: HEADs for %d repositories, tokens for %d, %d version checks; want %d, %d, 1",
				what,
				len(c.heads),
				len(c.tokens),
				c.pings,
				n,
				n,
			)
		}
		return report
	}
	want := func(what string, report Report, i int, decision Decision, state SignatureState) {
		t.Helper()
		img := report.Images[i]
		if img.Decision != decision || img.Signature.State != state {
			t.Errorf(
				"%s: image %d: %s, signature %q; want %s, %q (%v)",
				what,
				i,
				img.Decision,
				img.Signature.State,
				decision,
				state,
				img.Err,
			)
		}
	}

	report := tick("first observation", nil)
	for i := range n {
		want("first observation", report, i, DecisionRecord, "")
	}
	report = tick("steady tick", nil)
	for i := range n {
		want("steady tick", report, i, DecisionUnchanged, "")
	}

	gets := map[int]int{}
	for i := range signed + unsigned {
		digest, err := srv.PushImage(benchRepository(i) + ":prod")
		if err != nil {
			t.Fatal(err)
		}
		if i < signed {
			(&fixture{srv: srv}).sign(t, key, benchRepository(i), digest)
		}
		gets[i] = 3
	}
	report = tick("new digests", gets)
	for i := range n {
		switch {
		case i < signed:
			want("new signed digest", report, i, DecisionRestart, SignatureVerified)
			if l := report.Images[i].Signature.Layout; l != signature.LayoutSigTag {
				t.Errorf("new signed digest: image %d verified in layout %q, want %q", i, l, signature.LayoutSigTag)
			}
		case i < signed+unsigned:
			want("new unsigned digest", report, i, DecisionFailed, SignatureUnsigned)
		default:
			want("new digests", report, i, DecisionUnchanged, "")
		}
	}

	report = tick("the tick after", nil)
	for i := range n {
		switch {
		case i < signed:
			want("the tick after a signed restart", report, i, DecisionUnchanged, "")
		case i < signed+unsigned:
			want("the tick after a refusal", report, i, DecisionFailed, SignatureUnsigned)
			if !report.Images[i].Signature.Remembered {
				t.Errorf("the tick after a refusal: image %d fetched its verdict again", i)
			}
		default:
			want("the tick after", report, i, DecisionUnchanged, "")
		}
	}
}
