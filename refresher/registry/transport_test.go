package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestTokenKey(t *testing.T) {
	const realm = "https://auth.example.com/token"
	// req builds a token request for registry reg ("" unknown) with an optional Authorization.
	req := func(method, reg, authorization, query string, form url.Values) *http.Request {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		r, err := http.NewRequestWithContext(forRegistry(context.Background(), reg), method, realm+"?"+query, body)
		if err != nil {
			t.Fatal(err)
		}
		if authorization != "" {
			r.Header.Set("Authorization", authorization)
		}
		return r
	}
	get := func(query string) *http.Request { return req(http.MethodGet, "registry.example.com", "", query, nil) }
	post := func(form url.Values) *http.Request { return req(http.MethodPost, "registry.example.com", "", "", form) }
	key := func(req *http.Request) string {
		k, identity, sent, err := tokenKey(req)
		if err != nil {
			t.Fatal(err)
		}
		if req.Method == http.MethodPost {
			body, err := io.ReadAll(sent.Body)
			if err != nil || !strings.Contains(string(body), "grant_type=") {
				t.Errorf("the POST sent has body %q (%v), want the original form", body, err)
			}
		}
		for _, secret := range []string{"secret", "hunter2", "dXNlcjpodW50ZXIy"} {
			if strings.Contains(k, secret) || strings.Contains(identity, secret) {
				t.Errorf("key %q (identity %q) holds a credential", k, identity)
			}
		}
		return k
	}
	oauth := func(scope string) url.Values {
		return url.Values{
			"service":       {"registry"},
			"scope":         {scope},
			"grant_type":    {"refresh_token"},
			"refresh_token": {"secret"},
		}
	}
	password := func(user string) url.Values {
		return url.Values{
			"service":    {"registry"},
			"scope":      {"repository:a:pull"},
			"grant_type": {"password"},
			"username":   {user},
			"password":   {"hunter2"},
		}
	}
	const basic = "Basic dXNlcjpodW50ZXIy" // user:hunter2
	const query = "service=registry&scope=repository:a:pull"

	for _, tc := range []struct {
		name string
		a, b *http.Request
		same bool
	}{
		{
			"GET: scopes in any order",
			get("service=registry&scope=repository:a:pull&scope=repository:b:pull"),
			get("scope=repository:b:pull&scope=repository:a:pull&service=registry"),
			true,
		},
		{"GET: another scope", get(query), get("service=registry&scope=repository:b:pull"), false},
		{"GET: another service", get(query), get("service=other&scope=repository:a:pull"), false},
		{
			"POST: scopes in the form, in any order",
			post(oauth("repository:a:pull repository:b:pull")),
			post(oauth("repository:b:pull repository:a:pull")),
			true,
		},
		{"POST: another scope", post(oauth("repository:a:pull")), post(oauth("repository:b:pull")), false},
		{"POST and GET are different flows", post(oauth("repository:a:pull")), get(query), false},
		{"GET: another registry's challenge", get(query), req(http.MethodGet, "evil.example.com", "", query, nil), false},
		{"GET: credentials and anonymous", req(http.MethodGet, "registry.example.com", basic, query, nil), get(query), false},
		{
			"GET: the same credentials",
			req(http.MethodGet, "registry.example.com", basic, query, nil),
			req(http.MethodGet, "registry.example.com", basic, query, nil),
			true,
		},
		{
			"GET: other credentials",
			req(http.MethodGet, "registry.example.com", basic, query, nil),
			req(http.MethodGet, "registry.example.com", "Basic b3RoZXI6eA==", query, nil),
			false,
		},
		{
			"POST: another refresh token",
			post(oauth("repository:a:pull")),
			post(
				url.Values{
					"service":       {"registry"},
					"scope":         {"repository:a:pull"},
					"grant_type":    {"refresh_token"},
					"refresh_token": {"other"},
				},
			),
			false,
		},
		{"POST: another user", post(password("alice")), post(password("bob")), false},
		{
			"POST: another registry's challenge",
			post(oauth("repository:a:pull")),
			req(http.MethodPost, "evil.example.com", "", "", oauth("repository:a:pull")),
			false,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := key(tc.a), key(tc.b)
			if (a == b) != tc.same {
				t.Errorf("keys %q and %q: same = %t, want %t", a, b, a == b, tc.same)
			}
		})
	}
}

// fakeRegistry answers requests with handle, without a network: hosts are names that need
// not resolve (go-containerregistry refuses a token realm on a loopback address).
type fakeRegistry func(req *http.Request) *http.Response

func (f fakeRegistry) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	resp := f(req)
	resp.Request = req
	if resp.Header == nil {
		resp.Header = http.Header{}
	}
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	return resp, nil
}

func answer(status int, header http.Header, body string) *http.Response {
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Header: header,
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}
}

const fakeManifest = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
	`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,` +
	`"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}`

// bearerRegistry challenges every registry request and sends token requests to token.
func bearerRegistry(token func(req *http.Request) *http.Response) fakeRegistry {
	return func(req *http.Request) *http.Response {
		if req.URL.Host == "auth.example.com" {
			return token(req)
		}
		h := http.Header{}
		h.Set("WWW-Authenticate", `Bearer realm="https://auth.example.com/token",service="registry.example.com"`)
		return answer(http.StatusUnauthorized, h, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
	}
}

func resolveWith(t *testing.T, rt http.RoundTripper, ref string) Result {
	t.Helper()
	isolateKeychain(t)
	r, err := NewResolver(Options{Transport: rt})
	if err != nil {
		t.Fatal(err)
	}
	return r.Resolve(context.Background(), []string{ref})[0]
}

// A token endpoint's answer that grants no token never reaches the error (and so the logs)
// verbatim: it may carry a refresh_token. The status and a short reason do.
func TestTokenRefusalsAreWithheld(t *testing.T) {
	const secret = "s3cr3t-refresh-token"
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   []string
	}{
		{"200 without a token", http.StatusOK, `{"refresh_token":"` + secret + `","expires_in":300}`,
			[]string{"token request answered 200 OK: the token endpoint answered 200 without a token", "withheld"}},
		{
			"401 with a registry error",
			http.StatusUnauthorized,
			`{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}],"refresh_token":"` + secret + `"}`,
			[]string{"token request answered 401 Unauthorized: UNAUTHORIZED bad credentials"},
		},
		{
			"400 with an OAuth error",
			http.StatusBadRequest,
			`{"error":"invalid_grant","error_description":"refresh token expired","refresh_token":"` + secret + `"}`,
			[]string{"token request answered 400 Bad Request: invalid_grant refresh token"},
		},
		{"403 with an HTML page", http.StatusForbidden, `<html>` + secret + `</html>`,
			[]string{"token request answered 403 Forbidden (", "-byte body withheld)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := bearerRegistry(func(*http.Request) *http.Response { return answer(tc.status, http.Header{}, tc.body) })
			res := resolveWith(t, rt, "registry.example.com/team/app:prod")
			if res.Err == nil {
				t.Fatalf("resolved %s, want a failure", res.Digest)
			}
			msg := res.Err.Error()
			for _, want := range tc.want {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q lacks %q", msg, want)
				}
			}
			if strings.Contains(msg, secret) {
				t.Errorf("error leaks the token response: %q", msg)
			}
			if strings.Contains(msg, `"refresh_token"`) || strings.Contains(msg, "<html>") {
				t.Errorf("error carries the response body: %q", msg)
			}
		})
	}
}

// A granted token passes untouched, so the lookup succeeds.
func TestGrantedTokenPasses(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	rt := fakeRegistry(func(req *http.Request) *http.Response {
		if req.URL.Host == "auth.example.com" {
			return answer(http.StatusOK, http.Header{}, `{"token":"t0k","refresh_token":"r"}`)
		}
		if req.Header.Get("Authorization") != "Bearer t0k" {
			return bearerRegistry(nil)(req)
		}
		h := http.Header{}
		h.Set("Docker-Content-Digest", digest)
		h.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		h.Set("Content-Length", "100")
		return answer(http.StatusOK, h, "")
	})
	if res := resolveWith(t, rt, "registry.example.com/team/app:prod"); res.Err != nil || res.Digest != digest {
		t.Fatalf("got %+v, want %s", res, digest)
	}
}

// A HEAD redirected to another path (a CDN) and answered there without a digest falls back
// to GET, as a HEAD answered without a digest on the manifest path does.
func TestRedirectedHeadWithoutDigestFallsBackToGet(t *testing.T) {
	rt := fakeRegistry(func(req *http.Request) *http.Response {
		switch {
		case req.URL.Path == "/v2/":
			return answer(http.StatusOK, http.Header{}, "")
		case strings.Contains(req.URL.Path, "/manifests/"):
			return answer(http.StatusTemporaryRedirect, http.Header{"Location": {"https://cdn.example.com/blobs/xyz"}}, "")
		case req.URL.Host == "cdn.example.com" && req.Method == http.MethodHead:
			return answer(http.StatusOK, http.Header{}, "") // no digest, no Content-Length
		case req.URL.Host == "cdn.example.com":
			return answer(
				http.StatusOK,
				http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}},
				fakeManifest,
			)
		}
		return answer(http.StatusNotFound, http.Header{}, "")
	})
	res := resolveWith(t, rt, "registry.example.com/team/app:prod")
	want := "sha256:" + sha256Hex(fakeManifest)
	if res.Err != nil || res.Digest != want || !res.ViaGet {
		t.Fatalf("got %+v, want %s via GET", res, want)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
