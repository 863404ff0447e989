package e2e

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
	"github.com/tracebloc/image-refresh/refresher/registry"
)

// Credentials never cross registries, on real parts: two docker-registry instances, each with its token server. The
// pull secret holds credentials for "good" only, whose repository is private; "evil" sits
// behind a front that rewrites its challenge to name good's realm and service, for a
// repository of the same path. Within one run (one resolver), in either order, evil never
// receives a token bought with good's credentials, and good's lookup is not refused because
// evil's anonymous token came first.
func TestTokensStayWithTheirRegistry(t *testing.T) {
	tools.Require(t, tools.DockerRegistry)
	ctx := t.Context()
	dir := t.TempDir()
	const repo, tag = "e2e-tokens/app", "prod"

	good, err := harness.StartRegistry(ctx, filepath.Join(dir, "good"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(good.Close)
	evilBackend, err := harness.StartRegistry(ctx, filepath.Join(dir, "evil"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(evilBackend.Close)
	good.Tokens.RequireAuth(repo)
	digest, err := good.PushImage(ctx, repo, tag)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := evilBackend.PushImage(ctx, repo, tag); err != nil {
		t.Fatal(err)
	}

	// evil: its own registry, with good's realm and service in every challenge; it records
	// the subject of every bearer token it receives.
	var mu sync.Mutex
	var subjects []string
	backendURL, err := url.Parse("http://" + evilBackend.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(backendURL)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Header.Get("WWW-Authenticate") != "" {
			resp.Header.Set("WWW-Authenticate", `Bearer realm="`+good.Tokens.Realm+`",service="`+good.Tokens.Service+`"`)
		}
		return nil
	}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			mu.Lock()
			subjects = append(subjects, tokenSubject(tok))
			mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	// "localhost:PORT": go-containerregistry speaks plain HTTP to it, as to good.
	evil := "localhost:" + strings.TrimPrefix(front.URL, "http://127.0.0.1:")

	// The pull secret, as the CronJob mounts it: good's credentials only.
	secret, err := good.PullSecret(false)
	if err != nil {
		t.Fatal(err)
	}
	dockerConfig := filepath.Join(dir, "docker")
	if err := os.MkdirAll(dockerConfig, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dockerConfig, "config.json"), secret, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dockerConfig)

	for _, tc := range []struct {
		name  string
		order []string
	}{
		{"credentialed lookup first", []string{good.Host, evil}},
		{"anonymous lookup first", []string{evil, good.Host}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			subjects = nil
			mu.Unlock()
			resolver, err := registry.NewResolver(registry.Options{}) // the default keychain: DOCKER_CONFIG
			if err != nil {
				t.Fatal(err)
			}
			results := map[string]registry.Result{}
			for _, host := range tc.order {
				results[host] = resolver.Resolve(ctx, []string{host + "/" + repo + ":" + tag})[0]
			}
			if res := results[good.Host]; res.Err != nil || res.Digest != digest {
				t.Errorf("good (%s): got %+v, want %s", good.Host, res, digest)
			}
			if res := results[evil]; res.Err == nil {
				t.Errorf("evil (%s) resolved %s, want a refusal", evil, res.Digest)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(subjects) == 0 {
				t.Errorf("evil received no bearer token: the lookup did not reach it")
			}
			for _, sub := range subjects {
				if sub != "" {
					t.Errorf("evil received a token issued to %q by good's token server", sub)
				}
			}
			var users []string
			for _, tok := range good.Tokens.Issued() {
				users = append(users, tok.User)
			}
			t.Logf("good's token server issued tokens to %q (\"\": anonymous); evil received subjects %q", users, subjects)
		})
	}
}

// tokenSubject is the "sub" claim of a JWT ("" when absent or unreadable).
func tokenSubject(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	return claims.Sub
}
