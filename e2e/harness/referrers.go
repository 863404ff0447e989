package harness

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
)

// ReferrersRegistry is go-containerregistry's in-memory registry with the OCI 1.1 referrers API
// (GET /v2/<repo>/referrers/<digest>), which Debian's docker-registry lacks, behind the same
// token handshake as Registry: anonymous clients may pull, the pusher may push.
type ReferrersRegistry struct {
	// Host is "localhost:PORT".
	Host   string
	Tokens *TokenServer

	pusher authn.Authenticator
	server *http.Server
}

// StartReferrersRegistry serves the registry and its token server on free loopback ports.
func StartReferrersRegistry() (_ *ReferrersRegistry, err error) {
	password, err := randomHex(8)
	if err != nil {
		return nil, err
	}
	ts, err := startTokenServer("e2e-referrers-registry", "pusher", password)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			ts.Close()
		}
	}()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the referrers registry: %w", err)
	}
	r := &ReferrersRegistry{
		Host:   fmt.Sprintf("localhost:%d", l.Addr().(*net.TCPAddr).Port),
		Tokens: ts,
		pusher: &authn.Basic{Username: "pusher", Password: password},
	}
	reg := ggcrregistry.New(ggcrregistry.WithReferrersSupport(true), ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	r.server = &http.Server{Handler: ts.requireToken(reg), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.server.Serve(l) }()
	return r, nil
}

// Close stops the registry and its token server.
func (r *ReferrersRegistry) Close() {
	_ = r.server.Close()
	r.Tokens.Close()
}

// Repository is the full name of repo in this registry.
func (r *ReferrersRegistry) Repository(repo string) string { return r.Host + "/" + repo }

// Pusher is the pusher's credentials.
func (r *ReferrersRegistry) Pusher() authn.Authenticator { return r.pusher }

// requireToken admits a request only with a bearer token of this server granting the access it
// needs (pull for GET and HEAD, push otherwise) on the repository in its path; else it answers
// 401 with the challenge a registry sends, naming the scope.
func (ts *TokenServer) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		repo, ok := repositoryOf(req.URL.Path)
		action := "pull"
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			action = "push"
		}
		challenge := fmt.Sprintf("Bearer realm=%q,service=%q", ts.Realm, ts.Service)
		if ok {
			scope := "repository:" + repo + ":pull"
			if action == "push" {
				scope += ",push"
			}
			challenge += fmt.Sprintf(",scope=%q", scope)
		}
		token, hasToken := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		if !hasToken || ts.verify(token, repo, action, ok) != nil {
			w.Header().Set("WWW-Authenticate", challenge)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// verify checks a token's RS256 signature, audience, expiry and, for a repository path, that it
// grants action there.
func (ts *TokenServer) verify(token, repo, action string, needsAccess bool) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return fmt.Errorf("malformed token")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("decoding token signature: %w", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&ts.key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("token signature: %w", err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("decoding token claims: %w", err)
	}
	var claims struct {
		Aud    string        `json:"aud"`
		Exp    int64         `json:"exp"`
		Access []accessEntry `json:"access"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		return fmt.Errorf("parsing token claims: %w", err)
	}
	if claims.Aud != ts.Service || time.Now().Unix() > claims.Exp {
		return fmt.Errorf("token for %q expiring %d not valid here", claims.Aud, claims.Exp)
	}
	if !needsAccess {
		return nil
	}
	for _, a := range claims.Access {
		if a.Type == "repository" && a.Name == repo && slices.Contains(a.Actions, action) {
			return nil
		}
	}
	return fmt.Errorf("token grants no %s on %s", action, repo)
}

// repositoryOf is the repository of a /v2/<repo>/{manifests,blobs,tags,referrers}/… path.
func repositoryOf(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return "", false
	}
	best := -1
	for _, kind := range []string{"/manifests/", "/blobs/", "/tags/", "/referrers/"} {
		if i := strings.LastIndex(rest, kind); i > 0 && (best < 0 || i < best) {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	return rest[:best], true
}
