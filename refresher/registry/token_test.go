package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// tokenWorld serves hosts ("scheme://host[:port]") from handlers without a network: the names
// need not resolve, and go-containerregistry takes a realm on another host for what it is (it
// refuses one on a loopback address). A scheme a host does not serve fails to connect.
type tokenWorld struct {
	hosts map[string]http.Handler

	mu   sync.Mutex
	seen []seenRequest
}

type seenRequest struct{ url, authorization, form string }

func (w *tokenWorld) RoundTrip(req *http.Request) (*http.Response, error) {
	h := w.hosts[req.URL.Scheme+"://"+req.URL.Host]
	if h == nil {
		return nil, fmt.Errorf("dial %s://%s: connection refused", req.URL.Scheme, req.URL.Host)
	}
	var form string
	if req.Body != nil {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body.Close()
		form = string(body)
	}
	w.mu.Lock()
	w.seen = append(w.seen, seenRequest{req.URL.String(), req.Header.Get("Authorization"), form})
	w.mu.Unlock()
	in := req.Clone(req.Context()) // as a server sees it: never a nil body
	in.Body = io.NopCloser(strings.NewReader(form))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, in)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// sent returns the requests sent to hosts whose URL starts with prefix.
func (w *tokenWorld) sent(prefix string) []seenRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []seenRequest
	for _, s := range w.seen {
		if strings.HasPrefix(s.url, prefix) {
			out = append(out, s)
		}
	}
	return out
}

// newBackend is an in-memory registry holding team/app:prod; it returns the tag's digest.
func newBackend(t *testing.T) (http.Handler, string) {
	t.Helper()
	backend := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	push := &tokenWorld{hosts: map[string]http.Handler{"https://push.example.com": backend}}
	if err := remote.Write(
		name.MustParseReference("push.example.com/team/app:prod"),
		img,
		remote.WithTransport(push),
	); err != nil {
		t.Fatal(err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return backend, digest.String()
}

// bearerGate passes requests carrying one of tokens to next and challenges the others with
// realm and service.
func bearerGate(realm, service string, next http.Handler, tokens ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, tok := range tokens {
			if r.Header.Get("Authorization") == "Bearer "+tok {
				next.ServeHTTP(w, r)
				return
			}
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service=%q`, realm, service))
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
	})
}

// basicGate passes requests carrying user:password to next and challenges the others.
func basicGate(user, password string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok && u == user && p == password {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
	})
}

// tokenEndpoint grants credToken to user:password (Basic on GET, or a password or refresh_token
// grant by POST: refresh_token must equal password) and anonToken ("" refuses) to the rest.
func tokenEndpoint(user, password, credToken, anonToken string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			u, p, ok = r.PostForm.Get("username"), r.PostForm.Get("password"), true
			if rt := r.PostForm.Get("refresh_token"); rt != "" {
				u, p = user, rt
			}
		}
		switch {
		case ok && u == user && p == password:
			fmt.Fprintf(w, `{"token":%q}`, credToken)
		case anonToken != "" && r.Header.Get("Authorization") == "" && r.PostForm.Get("refresh_token") == "":
			fmt.Fprintf(w, `{"token":%q}`, anonToken)
		default:
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"access denied"}]}`, http.StatusUnauthorized)
		}
	})
}

// staticKeychain gives each registry (RegistryStr) its authenticator; anonymous for the rest.
type staticKeychain map[string]authn.Authenticator

func (k staticKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	if a, ok := k[target.RegistryStr()]; ok {
		return a, nil
	}
	return authn.Anonymous, nil
}

// A registry whose challenge names another registry's realm and service gets no token bought
// with that registry's credentials, and an anonymous refusal is not replayed to the registry
// with credentials: the run's token cache is keyed by registry and identity. Both orders, one
// resolver (one run) each.
func TestTokenCacheDoesNotCrossRegistries(t *testing.T) {
	const (
		realm     = "https://auth.good.example.com/token"
		service   = "good.example.com"
		credToken = "token-bought-with-good-credentials"
	)
	for _, tc := range []struct {
		name  string
		order []string // registries looked up, one Resolve each, in this order
	}{
		{
			"credentialed lookup first: the other registry gets no token bought with its credentials",
			[]string{"good.example.com", "evil.example.com"},
		},
		{
			"anonymous lookup first: its refusal is not replayed to the credentialed one",
			[]string{"evil.example.com", "good.example.com"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backend, digest := newBackend(t)
			world := &tokenWorld{hosts: map[string]http.Handler{
				"https://good.example.com":      bearerGate(realm, service, backend, credToken),
				"https://auth.good.example.com": tokenEndpoint("robot", "pull-secret", credToken, ""),
				// The other registry names good's realm and service, and serves anything
				// with any token: what it receives is what it could steal.
				"https://evil.example.com": bearerGate(realm, service, backend, credToken),
			}}
			r, err := NewResolver(Options{Transport: world, Keychain: staticKeychain{
				"good.example.com": authn.FromConfig(authn.AuthConfig{Username: "robot", Password: "pull-secret"}),
			}})
			if err != nil {
				t.Fatal(err)
			}
			results := map[string]Result{}
			for _, reg := range tc.order {
				results[reg] = r.Resolve(context.Background(), []string{reg + "/team/app:prod"})[0]
			}
			if res := results["good.example.com"]; res.Err != nil || res.Digest != digest {
				t.Errorf("good.example.com: got %+v, want %s", res, digest)
			}
			if res := results["evil.example.com"]; res.Err == nil {
				t.Errorf("evil.example.com resolved %s with good.example.com's token, want unauthorized", res.Digest)
			}
			for _, s := range world.sent("https://evil.example.com") {
				if strings.Contains(s.authorization, credToken) {
					t.Errorf("evil.example.com received good.example.com's token: %s %s", s.url, s.authorization)
				}
			}
		})
	}
}

// Credentials never travel over plain HTTP to a host that is not loopback unless the registry
// is listed insecure; anonymous lookups over plain HTTP are unaffected.
func TestNoCredentialsOverPlainHTTP(t *testing.T) {
	const (
		user, password = "robot", "pull-secret"
		credToken      = "credentialed-token"
		anonToken      = "anonymous-token"
	)
	creds := authn.FromConfig(authn.AuthConfig{Username: user, Password: password})
	refresh := authn.FromConfig(authn.AuthConfig{IdentityToken: password})
	type world = map[string]http.Handler
	basicRegistry := func(host string, backend http.Handler) world {
		return world{"http://" + host: basicGate(user, password, backend)}
	}
	bearerRegistry := func(host, realm string, backend http.Handler) world {
		w := world{"http://" + host: bearerGate(realm, host, backend, credToken, anonToken)}
		realmHost := strings.Join(strings.SplitN(realm, "/", 4)[:3], "/")
		if realmHost == "http://"+host {
			w[realmHost] = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, "/token") {
					tokenEndpoint(user, password, credToken, anonToken).ServeHTTP(rw, r)
					return
				}
				bearerGate(realm, host, backend, credToken, anonToken).ServeHTTP(rw, r)
			})
		} else {
			w[realmHost] = tokenEndpoint(user, password, credToken, anonToken)
		}
		return w
	}
	const private = "10.1.2.3:5000" // RFC 1918: go-containerregistry speaks plain HTTP to it
	for _, tc := range []struct {
		name     string
		host     string // the registry
		world    func(backend http.Handler) world
		auth     authn.Authenticator
		insecure []string
		refused  bool
	}{
		{"Basic challenge", private, func(b http.Handler) world { return basicRegistry(private, b) }, creds, nil, true},
		{
			"Basic challenge, registry listed insecure",
			private,
			func(b http.Handler) world { return basicRegistry(private, b) },
			creds,
			[]string{private},
			false,
		},
		{
			"Basic challenge, another registry listed insecure",
			private,
			func(b http.Handler) world { return basicRegistry(private, b) },
			creds,
			[]string{"10.1.2.4:5000"},
			true,
		},
		{
			"token endpoint on the registry",
			private,
			func(b http.Handler) world { return bearerRegistry(private, "http://"+private+"/token", b) },
			creds,
			nil,
			true,
		},
		{
			"token endpoint on the registry, refresh_token by POST",
			private,
			func(b http.Handler) world { return bearerRegistry(private, "http://"+private+"/token", b) },
			refresh,
			nil,
			true,
		},
		{
			"token endpoint on the registry, listed insecure",
			private,
			func(b http.Handler) world { return bearerRegistry(private, "http://"+private+"/token", b) },
			creds,
			[]string{private},
			false,
		},
		{
			"token endpoint on the registry, refresh_token by POST, listed insecure",
			private,
			func(b http.Handler) world { return bearerRegistry(private, "http://"+private+"/token", b) },
			refresh,
			[]string{private},
			false,
		},
		{
			"HTTPS token endpoint: the token bought with credentials",
			private,
			func(b http.Handler) world { return bearerRegistry(private, "https://auth.example.com/token", b) },
			creds,
			nil,
			true,
		},
		{
			"HTTPS token endpoint, listed insecure",
			private,
			func(b http.Handler) world { return bearerRegistry(private, "https://auth.example.com/token", b) },
			creds,
			[]string{private},
			false,
		},
		{
			"anonymous",
			private,
			func(b http.Handler) world { return bearerRegistry(private, "http://"+private+"/token", b) },
			authn.Anonymous,
			nil,
			false,
		},
		{
			"loopback address",
			"127.0.0.1:5000",
			func(b http.Handler) world { return basicRegistry("127.0.0.1:5000", b) },
			creds,
			nil,
			false,
		},
		{
			"localhost",
			"localhost:5000",
			func(b http.Handler) world { return bearerRegistry("localhost:5000", "http://localhost:5000/token", b) },
			creds,
			nil,
			false,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backend, digest := newBackend(t)
			w := &tokenWorld{hosts: tc.world(backend)}
			r, err := NewResolver(
				Options{Transport: w, Keychain: staticKeychain{tc.host: tc.auth}, InsecureRegistries: tc.insecure},
			)
			if err != nil {
				t.Fatal(err)
			}
			res := r.Resolve(context.Background(), []string{tc.host + "/team/app:prod"})[0]
			if !tc.refused {
				if res.Err != nil || res.Digest != digest {
					t.Fatalf("got %+v, want %s", res, digest)
				}
				return
			}
			var insecure *InsecureCredentialsError
			if !errors.As(res.Err, &insecure) {
				t.Fatalf("got %+v, want an InsecureCredentialsError", res)
			}
			for _, want := range []string{tc.host, "spec.insecureRegistries"} {
				if !strings.Contains(res.Err.Error(), want) {
					t.Errorf("error %q does not name %q", res.Err, want)
				}
			}
			for _, s := range w.sent("http://") {
				if strings.HasPrefix(s.authorization, "Basic ") ||
					(strings.HasPrefix(s.authorization, "Bearer ") && strings.Contains(s.authorization, credToken)) ||
					strings.Contains(s.form, password) {
					t.Errorf("credentials sent over plain HTTP: %s %q %q", s.url, s.authorization, s.form)
				}
			}
		})
	}
}
