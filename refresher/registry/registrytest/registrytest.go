// Package registrytest serves go-containerregistry's in-memory registry as Docker Hub and GHCR
// would, over TLS, with their exact bearer challenges and token endpoints, so the refresher's
// registry client can be tested and benchmarked without a network. Every request is counted;
// latency and failures can be injected.
//
// One TLS server answers for every host; the client transport (Transport, ClientTransport)
// dials it whatever host a request names, and trusts its certificate, which is issued for the
// real host names.
package registrytest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The registries served, with the challenges their real counterparts send.
const (
	DockerHubRealm   = "https://auth.docker.io/token"
	DockerHubService = "registry.docker.io"
	GHCRRealm        = "https://ghcr.io/token"
	GHCRService      = "ghcr.io"
)

type service struct {
	// host is the canonical registry host (index.docker.io for Docker Hub).
	host, realm, name string
	backend           http.Handler
}

// Request is one request the server received.
type Request struct {
	Method, Host, Path string
	Query              url.Values
	Authorization      string
	Accept             string
	// Received is when the request arrived, before any injected latency.
	Received time.Time
}

// IsToken reports whether the request asked a token endpoint for a token.
func (r Request) IsToken() bool { return strings.HasSuffix(r.Path, "/token") }

// IsPing reports whether the request was the registry API version check (GET /v2/).
func (r Request) IsPing() bool { return r.Path == "/v2/" }

// IsManifest reports whether the request was for a manifest, with the given method.
func (r Request) IsManifest(method string) bool {
	return r.Method == method && strings.Contains(r.Path, "/manifests/")
}

// Server is the fake registry front end.
type Server struct {
	srv     *httptest.Server
	certPEM []byte
	roots   *x509.CertPool
	// registries maps a registry host to its service; tokenHosts maps a token host to it.
	registries map[string]*service
	tokenHosts map[string]*service
	latency    atomic.Int64
	inFlight   atomic.Int64
	maxFlight  atomic.Int64

	mu          sync.Mutex
	requests    []Request
	statuses    map[string]int         // "host/repo" → status for its manifest requests
	headHeaders map[string]http.Header // "host/repo" → headers of HEAD manifest responses replaced ("" = dropped)
	answers     map[string]Answer      // "host/repo" → answers in place of the registry (SetAnswer)
	credentials map[string]string      // "host/repo" → required "user:password"
	noAccess    map[string]bool        // "host/repo" → tokens are granted without its scope
	tokenStatus map[string]int         // token host → status for every token request
}

// New starts a server for Docker Hub (index.docker.io, registry-1.docker.io; tokens from
// auth.docker.io) and GHCR (ghcr.io), closed when the test ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	s, err := Start()
	if err != nil {
		tb.Fatalf("starting fake registry: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Start starts a server without a test; Close stops it.
func Start() (*Server, error) {
	quiet := registry.Logger(log.New(io.Discard, "", 0))
	hub := &service{host: "index.docker.io", realm: DockerHubRealm, name: DockerHubService, backend: registry.New(quiet)}
	ghcr := &service{host: "ghcr.io", realm: GHCRRealm, name: GHCRService, backend: registry.New(quiet)}
	s := &Server{
		registries:  map[string]*service{"index.docker.io": hub, "registry-1.docker.io": hub, "ghcr.io": ghcr},
		tokenHosts:  map[string]*service{"auth.docker.io": hub, "ghcr.io": ghcr},
		statuses:    map[string]int{},
		headHeaders: map[string]http.Header{},
		answers:     map[string]Answer{},
		credentials: map[string]string{},
		noAccess:    map[string]bool{},
		tokenStatus: map[string]int{},
	}
	cert, certPEM, err := selfSignedCert([]string{"index.docker.io", "registry-1.docker.io", "auth.docker.io", "ghcr.io"})
	if err != nil {
		return nil, err
	}
	s.certPEM = certPEM
	s.roots = x509.NewCertPool()
	s.roots.AppendCertsFromPEM(certPEM)
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.srv.EnableHTTP2 = true // as Docker Hub and GHCR do
	s.srv.StartTLS()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.srv.Listener.Addr().String() }

// CertPEM is the server's certificate, to be trusted by clients.
func (s *Server) CertPEM() []byte { return s.certPEM }

// Transport is a client transport that reaches this server for every host.
func (s *Server) Transport() *http.Transport { return clientTransport(s.Addr(), s.roots) }

func clientTransport(addr string, roots *x509.CertPool) *http.Transport {
	var dialer net.Dialer
	return &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true, // as go-containerregistry's default transport does
		MaxIdleConnsPerHost: 256,
	}
}

// SetLatency delays every later response by d.
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

// SetManifestStatus makes every manifest request for repo ("ghcr.io/tracebloc/ingestor")
// answer status with a registry error body; status 0 serves them normally again.
func (s *Server) SetManifestStatus(repo string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		delete(s.statuses, canonicalRepo(repo))
		return
	}
	s.statuses[canonicalRepo(repo)] = status
}

// SetHeadDigest replaces Docker-Content-Digest in HEAD manifest responses for repo with
// digest; an empty digest drops the header, as some registries and proxies do.
func (s *Server) SetHeadDigest(repo, digest string) {
	s.SetHeadHeader(repo, "Docker-Content-Digest", digest)
}

// SetHeadHeader replaces header key in HEAD manifest responses for repo with value; an empty
// value drops the header (Content-Length too: the response then has no length).
func (s *Server) SetHeadHeader(repo, key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	repo = canonicalRepo(repo)
	if s.headHeaders[repo] == nil {
		s.headHeaders[repo] = http.Header{}
	}
	s.headHeaders[repo].Set(key, value)
}

// MaxInFlight is the largest number of requests the server was handling at once.
func (s *Server) MaxInFlight() int { return int(s.maxFlight.Load()) }

// RequireCredentials makes the token endpoint refuse repo's scope unless the request carries
// basic auth user:password, as a private repository would.
func (s *Server) RequireCredentials(repo, user, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.credentials[canonicalRepo(repo)] = user + ":" + password
}

// SetTokenStatus makes the token endpoint on host ("auth.docker.io") answer every request with
// status and a registry error body.
func (s *Server) SetTokenStatus(host string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenStatus[host] = status
}

// GrantNoAccess makes the token endpoint issue tokens that leave out repo's scope, as Docker
// Hub does for a repository that does not exist or that the caller may not read: the registry
// then answers the manifest request 401 with an insufficient_scope challenge.
func (s *Server) GrantNoAccess(repo string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noAccess[canonicalRepo(repo)] = true
}

// Requests returns the requests received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// ResetRequests forgets the requests received so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// Count returns how many received requests satisfy match.
func (s *Server) Count(match func(Request) bool) int {
	n := 0
	for _, r := range s.Requests() {
		if match(r) {
			n++
		}
	}
	return n
}

// PushImage uploads a random single-platform image as ref and returns its manifest digest.
// Uploads bypass authentication and are not counted.
func (s *Server) PushImage(ref string) (string, error) {
	img, err := random.Image(256, 1)
	if err != nil {
		return "", fmt.Errorf("generating image: %w", err)
	}
	return s.push(ref, img)
}

// PushIndex uploads a random multi-platform index as ref and returns the index digest.
func (s *Server) PushIndex(ref string) (string, error) {
	idx, err := random.Index(256, 1, 2)
	if err != nil {
		return "", fmt.Errorf("generating index: %w", err)
	}
	return s.push(ref, idx)
}

// PushSimpleSigning writes what cosign 2 writes for a key-based signature of digest in repo:
// tag sha256-<hex>.sig, an OCI image of one simple-signing layer (payload) whose annotation
// dev.cosignproject.cosign/signature holds sigB64.
func (s *Server) PushSimpleSigning(repo, digest string, payload []byte, sigB64 string) error {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(img, mutate.Addendum{
		Layer:       static.NewLayer(payload, "application/vnd.dev.cosignproject.cosign.simplesigning.v1+json"),
		Annotations: map[string]string{"dev.cosignproject.cosign/signature": sigB64},
	})
	if err != nil {
		return fmt.Errorf("building the signature of %s: %w", digest, err)
	}
	_, err = s.push(repo+":"+strings.Replace(digest, ":", "-", 1)+".sig", img)
	return err
}

func (s *Server) push(ref string, artifact interface {
	Digest() (v1.Hash, error)
}) (string, error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return "", fmt.Errorf("parsing %q: %w", ref, err)
	}
	svc, ok := s.registries[tag.RegistryStr()]
	if !ok {
		return "", fmt.Errorf("%s: not a registry this server fakes", tag.RegistryStr())
	}
	direct := remote.WithTransport(handlerTransport{svc.backend})
	switch a := artifact.(type) {
	case v1.ImageIndex:
		err = remote.WriteIndex(tag, a, direct)
	case v1.Image:
		err = remote.Write(tag, a, direct)
	}
	if err != nil {
		return "", fmt.Errorf("pushing %s: %w", ref, err)
	}
	h, err := artifact.Digest()
	if err != nil {
		return "", fmt.Errorf("digest of %s: %w", ref, err)
	}
	return h.String(), nil
}

// enter counts a request in flight and keeps the peak.
func (s *Server) enter() {
	n := s.inFlight.Add(1)
	for {
		peak := s.maxFlight.Load()
		if n <= peak || s.maxFlight.CompareAndSwap(peak, n) {
			return
		}
	}
}

// handlerTransport serves requests straight from a handler, for uploads.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	if req.Body == nil {
		req.Body = http.NoBody // a server request always has a body; the handler relies on it
	}
	t.h.ServeHTTP(rec, req)
	resp := rec.Result()
	resp.Request = req // the upload protocol resolves Location against it
	return resp, nil
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Host: host, Path: r.URL.Path, Query: r.URL.Query(),
		Authorization: r.Header.Get("Authorization"), Accept: r.Header.Get("Accept"), Received: time.Now()})
	s.mu.Unlock()
	s.enter()
	defer s.inFlight.Add(-1)

	if d := time.Duration(s.latency.Load()); d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-r.Context().Done():
			return
		}
	}
	if svc, ok := s.tokenHosts[host]; ok && r.URL.Path == "/token" {
		s.mu.Lock()
		status, fail := s.tokenStatus[host]
		s.mu.Unlock()
		if fail {
			writeStatusError(w, status)
			return
		}
		s.serveToken(w, r, svc)
		return
	}
	svc, ok := s.registries[host]
	if !ok || !strings.HasPrefix(r.URL.Path, "/v2/") {
		http.NotFound(w, r)
		return
	}
	s.serveRegistry(w, r, svc)
}

// tokenPrefix starts every token, so a token granting no scope is still a token.
const tokenPrefix = "token"

// serveToken answers the Docker token protocol: GET ?service=...&scope=... → {"token": ...}.
// The token is tokenPrefix and the granted scopes, base64-encoded, so the registry can check
// them.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, svc *service) {
	if got := r.URL.Query().Get("service"); got != svc.name {
		writeError(w, http.StatusBadRequest, "UNSUPPORTED", fmt.Sprintf("service %q, want %q", got, svc.name))
		return
	}
	user, password, hasBasic := r.BasicAuth()
	var granted []string
	for _, scope := range r.URL.Query()["scope"] {
		repo := strings.TrimPrefix(strings.TrimSuffix(scope, ":pull"), "repository:")
		s.mu.Lock()
		want, private := s.credentials[svc.host+"/"+repo]
		hidden := s.noAccess[svc.host+"/"+repo]
		s.mu.Unlock()
		if private && (!hasBasic || user+":"+password != want) {
			writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
			return
		}
		if !hidden {
			granted = append(granted, scope)
		}
	}
	token := base64.RawURLEncoding.EncodeToString([]byte(strings.Join(append([]string{tokenPrefix}, granted...), " ")))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(
		map[string]any{
			"token":        token,
			"access_token": token,
			"expires_in":   300,
			"issued_at":    time.Now().UTC().Format(time.RFC3339),
		},
	)
}

func (s *Server) serveRegistry(w http.ResponseWriter, r *http.Request, svc *service) {
	challenge := fmt.Sprintf(`Bearer realm=%q,service=%q`, svc.realm, svc.name)
	granted := grantedScopes(r.Header.Get("Authorization"))
	if r.URL.Path == "/v2/" {
		if granted == nil {
			w.Header().Set("WWW-Authenticate", challenge)
			writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	repo := strings.TrimPrefix(r.URL.Path, "/v2/")
	for _, kind := range []string{"/manifests/", "/blobs/", "/referrers/"} {
		if before, _, ok := strings.Cut(repo, kind); ok {
			repo = before
			break
		}
	}
	scope := "repository:" + repo + ":pull"
	if !slices.Contains(granted, scope) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`%s,scope=%q,error="insufficient_scope"`, challenge, scope))
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return
	}
	key := svc.host + "/" + repo
	s.mu.Lock()
	status, fail := s.statuses[key]
	headHeaders := s.headHeaders[key].Clone()
	answer := s.answers[key]
	s.mu.Unlock()
	if answer != nil && answer(w, r) {
		return
	}
	if fail && strings.Contains(r.URL.Path, "/manifests/") {
		writeStatusError(w, status)
		return
	}
	if headHeaders != nil && r.Method == http.MethodHead {
		w = headerReplacer{w, headHeaders}
	}
	svc.backend.ServeHTTP(w, r)
}

// headerReplacer replaces (or with "" drops) the headers it holds.
type headerReplacer struct {
	http.ResponseWriter
	replace http.Header
}

func (h headerReplacer) WriteHeader(code int) {
	for key, values := range h.replace {
		if values[0] == "" {
			h.Header().Del(key)
		} else {
			h.Header()[key] = values
		}
	}
	h.ResponseWriter.WriteHeader(code)
}

func grantedScopes(authorization string) []string {
	token, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return nil
	}
	fields := strings.Fields(string(raw))
	if len(fields) == 0 || fields[0] != tokenPrefix {
		return nil
	}
	return fields[1:]
}

// writeStatusError answers an injected failure as the registries do.
func writeStatusError(w http.ResponseWriter, status int) {
	code := "UNAVAILABLE"
	if status == http.StatusTooManyRequests {
		code = "TOOMANYREQUESTS"
	}
	writeError(w, status, code, http.StatusText(status))
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": message}}})
}

// canonicalRepo turns "docker.io/busybox" into "index.docker.io/library/busybox".
func canonicalRepo(repo string) string {
	r, err := name.NewRepository(repo)
	if err != nil {
		return repo
	}
	return r.Name()
}

func selfSignedCert(hosts []string) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generating key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "registrytest"},
		DNSNames:              hosts,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("creating certificate: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, certPEM, nil
}
