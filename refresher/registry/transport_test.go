package registry

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestTokenKey(t *testing.T) {
	const realm = "https://auth.example.com/token"
	get := func(query string) *http.Request {
		req, err := http.NewRequest(http.MethodGet, realm+"?"+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	post := func(form url.Values) *http.Request {
		req, err := http.NewRequest(http.MethodPost, realm, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	key := func(req *http.Request) string {
		k, sent, err := tokenKey(req)
		if err != nil {
			t.Fatal(err)
		}
		if req.Method == http.MethodPost {
			body, err := io.ReadAll(sent.Body)
			if err != nil || !strings.Contains(string(body), "grant_type=refresh_token") {
				t.Errorf("the POST sent has body %q (%v), want the original form", body, err)
			}
		}
		return k
	}
	oauth := func(scope string) url.Values {
		return url.Values{"service": {"registry"}, "scope": {scope}, "grant_type": {"refresh_token"}, "refresh_token": {"secret"}}
	}

	for _, tc := range []struct {
		name string
		a, b *http.Request
		same bool
	}{
		{"GET: scopes in any order", get("service=registry&scope=repository:a:pull&scope=repository:b:pull"), get("scope=repository:b:pull&scope=repository:a:pull&service=registry"), true},
		{"GET: another scope", get("service=registry&scope=repository:a:pull"), get("service=registry&scope=repository:b:pull"), false},
		{"GET: another service", get("service=registry&scope=repository:a:pull"), get("service=other&scope=repository:a:pull"), false},
		{"POST: scopes in the form, in any order", post(oauth("repository:a:pull repository:b:pull")), post(oauth("repository:b:pull repository:a:pull")), true},
		{"POST: another scope", post(oauth("repository:a:pull")), post(oauth("repository:b:pull")), false},
		{"POST and GET are different flows", post(oauth("repository:a:pull")), get("service=registry&scope=repository:a:pull"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := key(tc.a), key(tc.b)
			if (a == b) != tc.same {
				t.Errorf("keys %q and %q: same = %t, want %t", a, b, a == b, tc.same)
			}
		})
	}
}
