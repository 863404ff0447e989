package registry

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzBearerRealm: the WWW-Authenticate parser that finds token endpoints never panics; what
// it returns is "" or scheme://host/path of a URL, without query or fragment; and for a
// well-formed bearer challenge built from the inputs, whatever parameters follow the realm,
// the token request go-containerregistry then sends to the realm is recognised as one (the
// same scheme://host/path key).
func FuzzBearerRealm(f *testing.F) {
	f.Add(
		`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/x:pull"`,
		"https",
		"ghcr.io",
		"/token",
		`service="ghcr.io"`,
	)
	f.Add(`Basic realm="x"`, "http", "127.0.0.1:5000", "/auth", "")
	f.Add(`bearer REALM="http://a/b?c=d#e"`, "https", "auth.example.com", "/v2/token", `error="invalid_token"`)
	f.Add(`Bearer realm=unquoted`, "https", "h", "", `scope="a,b"`)
	f.Add("", "", "", "", "")
	f.Fuzz(func(t *testing.T, header, scheme, host, path, params string) {
		h := http.Header{}
		h.Add("WWW-Authenticate", header)
		if got := bearerRealm(h); got != "" {
			u, err := url.Parse(got)
			if err != nil || u.RawQuery != "" || u.Fragment != "" || !strings.HasPrefix(got, u.Scheme+"://") {
				t.Fatalf("bearerRealm(%q) = %q: not scheme://host/path (%v)", header, got, err)
			}
		}

		// A challenge as registries send it: the realm, then other quoted parameters.
		realm := (&url.URL{Scheme: scheme, Host: host, Path: path}).String()
		if scheme != "http" && scheme != "https" || host == "" || strings.ContainsAny(realm, `" `) ||
			strings.ContainsAny(params, `"`) && !wellQuoted(params) {
			return
		}
		u, err := url.Parse(realm)
		if err != nil || u.Host != host || u.Path != path {
			return
		}
		challenge := `Bearer realm="` + realm + `"`
		if params != "" {
			challenge += "," + params
		}
		h = http.Header{}
		h.Add("WWW-Authenticate", challenge)
		if u.Hostname() == "" {
			if got := bearerRealm(h); got != "" {
				t.Fatalf("bearerRealm(%q) = %q; a realm without a host name names no endpoint", challenge, got)
			}
			return
		}
		req, err := http.NewRequest(http.MethodGet, realm+"?service=s&scope=repository:x:pull", nil)
		if err != nil {
			return
		}
		if got, want := bearerRealm(h), req.URL.Scheme+"://"+req.URL.Host+req.URL.Path; got != want {
			t.Fatalf("bearerRealm(%q) = %q; the token request to it is keyed %q", challenge, got, want)
		}
	})
}

// wellQuoted reports whether params are key="value" pairs separated by commas, values free
// of quotes, and no key is realm (which would name another endpoint).
func wellQuoted(params string) bool {
	for _, p := range strings.Split(params, ",") {
		key, value, ok := strings.Cut(p, "=")
		if !ok || len(value) < 2 || value[0] != '"' || value[len(value)-1] != '"' ||
			strings.Contains(value[1:len(value)-1], `"`) ||
			strings.EqualFold(strings.TrimSpace(key), "realm") || strings.ContainsAny(key, `" `) {
			return false
		}
	}
	return true
}
