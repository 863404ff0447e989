package registry

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tracebloc/image-refresh/refresher/registry/registrytest"
)

// isolateKeychain points the default keychain at an empty config so the machine's own
// credentials never leak into a test.
func isolateKeychain(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("DOCKER_CONFIG", filepath.Join(dir, "docker"))
	t.Setenv("REGISTRY_AUTH_FILE", "")
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	return filepath.Join(dir, "docker")
}

func newServer(t *testing.T) *registrytest.Server {
	t.Helper()
	isolateKeychain(t)
	return registrytest.New(t)
}

func newResolver(t *testing.T, srv *registrytest.Server, opts Options) *Resolver {
	t.Helper()
	opts.Transport = srv.Transport()
	r, err := NewResolver(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func push(t *testing.T, srv *registrytest.Server, ref string, index bool) string {
	t.Helper()
	pushFn := srv.PushImage
	if index {
		pushFn = srv.PushIndex
	}
	digest, err := pushFn(ref)
	if err != nil {
		t.Fatal(err)
	}
	return digest
}

func manifestRequests(srv *registrytest.Server, method, host, path string) int {
	return srv.Count(func(r registrytest.Request) bool {
		return r.IsManifest(method) && r.Host == host && r.Path == path
	})
}

func TestResolveDockerHubAndGHCR(t *testing.T) {
	srv := newServer(t)
	jobsManager := push(t, srv, "docker.io/tracebloc/jobs-manager:prod", false)
	podsMonitor := push(t, srv, "docker.io/tracebloc/pods-monitor:prod", false)
	ingestor := push(t, srv, "ghcr.io/tracebloc/ingestor:prod", true) // multi-arch

	results := newResolver(t, srv, Options{}).Resolve(context.Background(), []string{
		"docker.io/tracebloc/jobs-manager:prod",
		"docker.io/tracebloc/pods-monitor:prod",
		"ghcr.io/tracebloc/ingestor:prod",
		"index.docker.io/tracebloc/jobs-manager:prod", // the same tag, spelled differently
		"tracebloc/jobs-manager:prod",                 // and once more
	})
	want := []string{jobsManager, podsMonitor, ingestor, jobsManager, jobsManager}
	for i, res := range results {
		if res.Err != nil || res.Digest != want[i] || res.ViaGet {
			t.Errorf("result %d = %+v, want digest %s by HEAD", i, res, want[i])
		}
	}

	for _, head := range []struct{ host, path string }{
		{"index.docker.io", "/v2/tracebloc/jobs-manager/manifests/prod"},
		{"index.docker.io", "/v2/tracebloc/pods-monitor/manifests/prod"},
		{"ghcr.io", "/v2/tracebloc/ingestor/manifests/prod"},
	} {
		if n := manifestRequests(srv, http.MethodHead, head.host, head.path); n != 1 {
			t.Errorf("HEAD %s%s sent %d times, want once", head.host, head.path, n)
		}
	}
	if n := srv.Count(func(r registrytest.Request) bool { return r.IsManifest(http.MethodGet) }); n != 0 {
		t.Errorf("%d manifest GETs, want none (a GET is a pull)", n)
	}

	var tokens []string
	for _, r := range srv.Requests() {
		if r.IsToken() {
			tokens = append(tokens, r.Method+" https://"+r.Host+r.Path+
				"?service="+r.Query.Get("service")+"&scope="+strings.Join(r.Query["scope"], "&scope="))
		}
	}
	slices.Sort(tokens)
	wantTokens := []string{
		"GET https://auth.docker.io/token?service=registry.docker.io&scope=repository:tracebloc/jobs-manager:pull",
		"GET https://auth.docker.io/token?service=registry.docker.io&scope=repository:tracebloc/pods-monitor:pull",
		"GET https://ghcr.io/token?service=ghcr.io&scope=repository:tracebloc/ingestor:pull",
	}
	if !slices.Equal(tokens, wantTokens) {
		t.Errorf("token requests:\n%s\nwant:\n%s", strings.Join(tokens, "\n"), strings.Join(wantTokens, "\n"))
	}

	pings := srv.Count(registrytest.Request.IsPing)
	if pings != 2 {
		t.Errorf("%d version checks (GET /v2/), want one per registry (2)", pings)
	}
	if total := len(srv.Requests()); total != 3+3+pings {
		t.Errorf("%d requests, want 3 HEADs + 3 tokens + %d version checks: %+v", total, pings, srv.Requests())
	}
}

func TestResolveAcceptsEveryManifestType(t *testing.T) {
	srv := newServer(t)
	push(t, srv, "ghcr.io/tracebloc/ingestor:prod", true)
	if res := newResolver(t, srv, Options{}).Resolve(
		context.Background(),
		[]string{"ghcr.io/tracebloc/ingestor:prod"},
	); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	for _, r := range srv.Requests() {
		if !r.IsManifest(http.MethodHead) {
			continue
		}
		for _, mt := range []types.MediaType{
			types.OCIImageIndex,
			types.DockerManifestList,
			types.OCIManifestSchema1,
			types.DockerManifestSchema2,
		} {
			if !strings.Contains(r.Accept, string(mt)) {
				t.Errorf("HEAD Accept %q lacks %s", r.Accept, mt)
			}
		}
	}
}

func TestResolveOneSegmentDockerHubName(t *testing.T) {
	srv := newServer(t)
	want := push(t, srv, "docker.io/busybox:latest", false)
	res := newResolver(t, srv, Options{}).Resolve(
		context.Background(),
		[]string{"docker.io/busybox:latest", "busybox:latest"},
	)
	for _, r := range res {
		if r.Err != nil || r.Digest != want {
			t.Errorf("busybox: %+v, want %s", r, want)
		}
	}
	if n := manifestRequests(srv, http.MethodHead, "index.docker.io", "/v2/library/busybox/manifests/latest"); n != 1 {
		t.Errorf("HEAD /v2/library/busybox/manifests/latest sent %d times, want once", n)
	}
	scopes := srv.Count(func(r registrytest.Request) bool {
		return r.IsToken() && r.Host == "auth.docker.io" &&
			slices.Equal(r.Query["scope"], []string{"repository:library/busybox:pull"})
	})
	if scopes != 1 {
		t.Errorf("%d token requests for repository:library/busybox:pull, want 1: %+v", scopes, srv.Requests())
	}
}

func TestResolveOneTokenPerRepository(t *testing.T) {
	srv := newServer(t)
	prod := push(t, srv, "ghcr.io/tracebloc/ingestor:prod", false)
	stg := push(t, srv, "ghcr.io/tracebloc/ingestor:stg", false)
	res := newResolver(t, srv, Options{}).Resolve(
		context.Background(),
		[]string{"ghcr.io/tracebloc/ingestor:prod", "ghcr.io/tracebloc/ingestor:stg"},
	)
	if res[0].Digest != prod || res[1].Digest != stg {
		t.Fatalf("results %+v, want %s and %s", res, prod, stg)
	}
	if n := srv.Count(registrytest.Request.IsToken); n != 1 {
		t.Errorf("%d token requests for two tags of one repository, want 1", n)
	}
	if n := srv.Count(func(r registrytest.Request) bool { return r.IsManifest(http.MethodHead) }); n != 2 {
		t.Errorf("%d HEADs, want 2", n)
	}
}

func TestResolveNeverRetriesRateLimitsOrServerErrors(t *testing.T) {
	for _, status := range []int{
		http.StatusTooManyRequests,
		http.StatusInternalServerError,
		http.StatusBadGateway,
		http.StatusServiceUnavailable,
		http.StatusGatewayTimeout,
	} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			srv := newServer(t)
			push(t, srv, "ghcr.io/tracebloc/ingestor:prod", false)
			healthy := push(t, srv, "docker.io/tracebloc/jobs-manager:prod", false)
			srv.SetManifestStatus("ghcr.io/tracebloc/ingestor", status)

			res := newResolver(t, srv, Options{}).Resolve(
				context.Background(),
				[]string{"ghcr.io/tracebloc/ingestor:prod", "docker.io/tracebloc/jobs-manager:prod"},
			)
			var terr *transport.Error
			if !errors.As(res[0].Err, &terr) || terr.StatusCode != status {
				t.Errorf("ingestor error = %v, want a transport error with status %d", res[0].Err, status)
			}
			if res[1].Err != nil || res[1].Digest != healthy {
				t.Errorf("the other image suffered: %+v", res[1])
			}
			if n := manifestRequests(srv, http.MethodHead, "ghcr.io", "/v2/tracebloc/ingestor/manifests/prod"); n != 1 {
				t.Errorf("HEAD sent %d times after %d, want once", n, status)
			}
			if n := manifestRequests(srv, http.MethodGet, "ghcr.io", "/v2/tracebloc/ingestor/manifests/prod"); n != 0 {
				t.Errorf("GET sent %d times after %d, want never", n, status)
			}
		})
	}
}

func TestResolveSkipsAHostThatFailedEarlier(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fail   func(*registrytest.Server)
		host   string
		status int
	}{
		{"registry rate limit", func(srv *registrytest.Server) {
			srv.SetManifestStatus("docker.io/tracebloc/jobs-manager", http.StatusTooManyRequests)
		}, "index.docker.io", http.StatusTooManyRequests},
		{"token endpoint outage", func(srv *registrytest.Server) {
			srv.SetTokenStatus("auth.docker.io", http.StatusServiceUnavailable)
		}, "auth.docker.io", http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t)
			push(t, srv, "docker.io/tracebloc/jobs-manager:prod", false)
			push(t, srv, "docker.io/tracebloc/pods-monitor:prod", false)
			ingestor := push(t, srv, "ghcr.io/tracebloc/ingestor:prod", false)
			tc.fail(srv)

			// One lookup at a time, in order: jobs-manager meets the failure first.
			res := newResolver(t, srv, Options{Concurrency: 1}).Resolve(context.Background(), []string{
				"docker.io/tracebloc/jobs-manager:prod", "docker.io/tracebloc/pods-monitor:prod", "ghcr.io/tracebloc/ingestor:prod",
			})
			var terr *transport.Error
			if !errors.As(res[0].Err, &terr) || terr.StatusCode != tc.status {
				t.Errorf("jobs-manager: %v, want status %d", res[0].Err, tc.status)
			}
			var skipped *SkippedError
			want := fmt.Sprintf(
				"resolving docker.io/tracebloc/pods-monitor:prod: skipped: %s answered %d earlier in this run",
				tc.host,
				tc.status,
			)
			if !errors.As(res[1].Err, &skipped) || res[1].Err.Error() != want {
				t.Errorf("pods-monitor: %v, want %q", res[1].Err, want)
			}
			if res[2].Err != nil || res[2].Digest != ingestor {
				t.Errorf("ingestor on another registry: %+v, want %s", res[2], ingestor)
			}
			for _, r := range srv.Requests() {
				if strings.Contains(r.Path, "pods-monitor") || strings.Contains(r.Query.Get("scope"), "pods-monitor") {
					t.Errorf("request for the skipped lookup: %s %s%s?%s", r.Method, r.Host, r.Path, r.Query.Encode())
				}
			}
		})
	}
}

func TestResolveFallsBackToGetWhenHeadHasNoDigest(t *testing.T) {
	srv := newServer(t)
	want := push(t, srv, "ghcr.io/tracebloc/ingestor:prod", true)
	srv.SetHeadDigest("ghcr.io/tracebloc/ingestor", "")

	res := newResolver(t, srv, Options{}).Resolve(context.Background(), []string{"ghcr.io/tracebloc/ingestor:prod"})
	if res[0].Err != nil || res[0].Digest != want || !res[0].ViaGet {
		t.Fatalf("result %+v, want %s via GET", res[0], want)
	}
	path := "/v2/tracebloc/ingestor/manifests/prod"
	if h, g := manifestRequests(srv, http.MethodHead, "ghcr.io", path),
		manifestRequests(srv, http.MethodGet, "ghcr.io", path); h != 1 || g != 1 {
		t.Errorf("HEAD ×%d, GET ×%d; want one of each", h, g)
	}
	if n := srv.Count(registrytest.Request.IsToken); n != 1 {
		t.Errorf("%d token requests, want the HEAD's token reused by the GET", n)
	}
}

func TestResolveTakesTheHeadDigestWithoutContentHeaders(t *testing.T) {
	for _, header := range []string{"Content-Type", "Content-Length"} {
		t.Run(header, func(t *testing.T) {
			srv := newServer(t)
			want := push(t, srv, "ghcr.io/tracebloc/ingestor:prod", true)
			srv.SetHeadHeader("ghcr.io/tracebloc/ingestor", header, "")

			res := newResolver(t, srv, Options{}).Resolve(context.Background(), []string{"ghcr.io/tracebloc/ingestor:prod"})
			if res[0].Err != nil || res[0].Digest != want || res[0].ViaGet {
				t.Fatalf("result %+v, want %s by HEAD", res[0], want)
			}
			path := "/v2/tracebloc/ingestor/manifests/prod"
			if h, g := manifestRequests(srv, http.MethodHead, "ghcr.io", path),
				manifestRequests(srv, http.MethodGet, "ghcr.io", path); h != 1 || g != 0 {
				t.Errorf("HEAD ×%d, GET ×%d; want one HEAD and no GET", h, g)
			}
		})
	}
}

func TestResolveRejectsDigestsOutsideTheContract(t *testing.T) {
	srv := newServer(t)
	push(t, srv, "ghcr.io/tracebloc/ingestor:prod", false)
	srv.SetHeadDigest("ghcr.io/tracebloc/ingestor", "sha512:"+strings.Repeat("ab", 64))

	res := newResolver(t, srv, Options{}).Resolve(context.Background(), []string{"ghcr.io/tracebloc/ingestor:prod"})
	if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "sha256:<64 hex>") {
		t.Errorf("result %+v, want the digest rejected", res[0])
	}
	if n := srv.Count(func(r registrytest.Request) bool { return r.IsManifest(http.MethodGet) }); n != 0 {
		t.Errorf("%d GETs, want none", n)
	}
}

func TestResolveUnknownTagAndBadReference(t *testing.T) {
	srv := newServer(t)
	push(t, srv, "ghcr.io/tracebloc/ingestor:prod", false)
	res := newResolver(t, srv, Options{}).Resolve(
		context.Background(),
		[]string{"ghcr.io/tracebloc/ingestor:missing", "ghcr.io/Bad Name:x"},
	)
	var terr *transport.Error
	if !errors.As(res[0].Err, &terr) || terr.StatusCode != http.StatusNotFound {
		t.Errorf("missing tag: %v, want 404", res[0].Err)
	}
	if res[1].Err == nil || !strings.Contains(res[1].Err.Error(), `parsing reference "ghcr.io/Bad Name:x"`) {
		t.Errorf("bad reference: %v", res[1].Err)
	}
	if n := srv.Count(func(r registrytest.Request) bool { return r.IsManifest(http.MethodGet) }); n != 0 {
		t.Errorf("%d GETs after a 404, want none", n)
	}
}

func TestResolvePrivateRepositoryWithDockerConfig(t *testing.T) {
	srv := newServer(t)
	want := push(t, srv, "ghcr.io/tracebloc/private:prod", false)
	srv.RequireCredentials("ghcr.io/tracebloc/private", "bot", "s3cret")

	res := newResolver(t, srv, Options{}).Resolve(context.Background(), []string{"ghcr.io/tracebloc/private:prod"})
	if res[0].Err == nil {
		t.Fatalf("anonymous lookup of a private repository succeeded: %+v", res[0])
	}

	dockerConfig := isolateKeychain(t)
	if err := os.MkdirAll(dockerConfig, 0o700); err != nil {
		t.Fatal(err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("bot:s3cret"))
	if err := os.WriteFile(
		filepath.Join(dockerConfig, "config.json"),
		[]byte(`{"auths":{"ghcr.io":{"auth":"`+auth+`"}}}`),
		0o600,
	); err != nil {
		t.Fatal(err)
	}
	srv.ResetRequests()
	res = newResolver(t, srv, Options{}).Resolve(context.Background(), []string{"ghcr.io/tracebloc/private:prod"})
	if res[0].Err != nil || res[0].Digest != want {
		t.Fatalf("with DOCKER_CONFIG credentials: %+v", res[0])
	}
	withBasic := srv.Count(func(r registrytest.Request) bool {
		return r.IsToken() && r.Authorization == "Basic "+auth
	})
	if withBasic != 1 {
		t.Errorf("%d token requests carried the configured credentials, want 1: %+v", withBasic, srv.Requests())
	}
}

// A refused lookup sends one token request per repository scope and at most one HEAD per tag:
// go-containerregistry would fetch a new token and repeat the HEAD after a 401 challenge, and
// a later lookup in the same repository would ask for the refused token again.
func TestResolveUnauthorizedAsksOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		refuse func(*registrytest.Server)
		refs   []string
		heads  int
	}{
		{
			name:   "token without access to the repository (a typo on Docker Hub)",
			refuse: func(srv *registrytest.Server) { srv.GrantNoAccess("docker.io/tracebloc/jobs-manger") },
			refs:   []string{"docker.io/tracebloc/jobs-manger:prod", "docker.io/tracebloc/jobs-manger:stg"},
			heads:  2, // one per tag: the token endpoint gave a token, the registry refuses each tag
		},
		{
			name:   "token refused (a private repository without credentials)",
			refuse: func(srv *registrytest.Server) { srv.RequireCredentials("ghcr.io/tracebloc/private", "bot", "s3cret") },
			refs:   []string{"ghcr.io/tracebloc/private:prod", "ghcr.io/tracebloc/private:stg"},
			heads:  0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t)
			for _, ref := range tc.refs {
				push(t, srv, ref, false)
			}
			tc.refuse(srv)

			// One lookup at a time, so the second tag's lookup starts after the first was refused.
			res := newResolver(t, srv, Options{Concurrency: 1}).Resolve(context.Background(), tc.refs)
			for i, r := range res {
				if r.Err == nil || !strings.Contains(r.Err.Error(), "resolving "+tc.refs[i]+": unauthorized") {
					t.Errorf("%s: %+v, want an unauthorized error", tc.refs[i], r)
				}
			}
			if n := srv.Count(registrytest.Request.IsToken); n != 1 {
				t.Errorf("%d token requests, want 1 for the repository's scope: %+v", n, srv.Requests())
			}
			if n := srv.Count(func(r registrytest.Request) bool { return r.IsManifest(http.MethodHead) }); n != tc.heads {
				t.Errorf("%d HEADs, want %d", n, tc.heads)
			}
			if n := srv.Count(func(r registrytest.Request) bool { return r.IsManifest(http.MethodGet) }); n != 0 {
				t.Errorf("%d GETs, want none", n)
			}
		})
	}
}

func TestResolveBoundsConcurrency(t *testing.T) {
	srv := newServer(t)
	var refs []string
	for _, repo := range []string{"a", "b", "c", "d", "e", "f"} {
		ref := "ghcr.io/bound/" + repo + ":prod"
		push(t, srv, ref, false)
		refs = append(refs, ref)
	}
	// Latency keeps requests overlapping long enough for the bound to be what limits them.
	srv.SetLatency(20 * time.Millisecond)
	for _, res := range newResolver(t, srv, Options{Concurrency: 2}).Resolve(context.Background(), refs) {
		if res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	if peak := srv.MaxInFlight(); peak > 2 {
		t.Errorf("%d requests in flight at once, want at most 2", peak)
	}
}

func TestResolveTimeout(t *testing.T) {
	srv := newServer(t)
	push(t, srv, "ghcr.io/tracebloc/ingestor:prod", false)
	srv.SetLatency(2 * time.Second)
	res := newResolver(t, srv, Options{Timeout: 50 * time.Millisecond}).Resolve(
		context.Background(),
		[]string{"ghcr.io/tracebloc/ingestor:prod"},
	)
	if !errors.Is(res[0].Err, context.DeadlineExceeded) {
		t.Errorf("error %v, want the lookup's deadline", res[0].Err)
	}
}

func TestResolveCancelledRun(t *testing.T) {
	srv := newServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := newResolver(t, srv, Options{}).Resolve(
		ctx,
		[]string{"ghcr.io/tracebloc/ingestor:prod", "ghcr.io/tracebloc/other:prod"},
	)
	for _, r := range res {
		if !errors.Is(r.Err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", r.Err)
		}
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("a cancelled run sent %d requests: %+v", n, srv.Requests())
	}
}

func TestNewResolverRejectsNegativeOptions(t *testing.T) {
	if _, err := NewResolver(Options{Concurrency: -1}); err == nil {
		t.Error("negative concurrency accepted")
	}
	if _, err := NewResolver(Options{Timeout: -time.Second}); err == nil {
		t.Error("negative timeout accepted")
	}
}

// Serves: one HEAD of repository@digest; another repository's digest or an unknown one is not
// served, whatever the repository's other tags.
func TestServes(t *testing.T) {
	srv := newServer(t)
	served := push(t, srv, "ghcr.io/tracebloc/ingestor:old", false)
	elsewhere := push(t, srv, "ghcr.io/evil/ingestor:x", false)
	r := newResolver(t, srv, Options{})
	for _, tc := range []struct {
		name, repository, digest string
		ok                       bool
	}{
		{"served", "ghcr.io/tracebloc/ingestor", served, true},
		{"served by another repository only", "ghcr.io/tracebloc/ingestor", elsewhere, false},
		{"unknown", "ghcr.io/tracebloc/ingestor", "sha256:" + strings.Repeat("0", 64), false},
		{"not a digest", "ghcr.io/tracebloc/ingestor", "latest", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := manifestRequests(srv, http.MethodHead, "ghcr.io", "/v2/tracebloc/ingestor/manifests/"+tc.digest)
			err := r.Serves(t.Context(), tc.repository, tc.digest)
			if (err == nil) != tc.ok {
				t.Fatalf("Serves(%s@%s) = %v, want ok %v", tc.repository, tc.digest, err, tc.ok)
			}
			if n := manifestRequests(srv, http.MethodHead, "ghcr.io", "/v2/tracebloc/ingestor/manifests/"+tc.digest) -
				before; tc.digest != "latest" && n != 1 {
				t.Errorf("%d HEADs, want 1", n)
			}
		})
	}
}
