package harness

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// TokenServer is the bearer-token endpoint of a registry, speaking the Docker registry token
// protocol (the Docker Hub and GHCR handshake): the registry answers 401 with a Bearer
// challenge naming this realm, the client fetches a token here and retries. Anonymous
// clients get pull access only; the pusher's basic credentials get what they ask for.
type TokenServer struct {
	// Realm is the token URL the registry advertises. Its host is "localhost", not an IP
	// literal: go-containerregistry refuses realms on private IP literals.
	Realm   string
	Service string
	Issuer  string

	pushUser, pushPassword string
	key                    *rsa.PrivateKey
	keyID                  string
	certPEM                []byte
	server                 *http.Server

	mu      sync.Mutex
	issued  []IssuedToken
	private map[string]bool
}

// RequireAuth makes repository (without the registry host) private: anonymous clients get
// no access to it, only the pusher's credentials do.
func (ts *TokenServer) RequireAuth(repository string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.private == nil {
		ts.private = map[string]bool{}
	}
	ts.private[repository] = true
}

// IssuedToken records one token handed out, for assertions on the handshake.
type IssuedToken struct {
	// User is the basic-auth user, empty for anonymous.
	User string
	// Access is each granted scope as "type:name:action,action".
	Access []string
}

type accessEntry struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// startTokenServer serves /token on a free loopback port.
func startTokenServer(service, pushUser, pushPassword string) (*TokenServer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generating token signing key: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encoding token public key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "e2e token issuer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating token certificate: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the token server: %w", err)
	}
	ts := &TokenServer{
		Realm:        fmt.Sprintf("http://localhost:%d/token", l.Addr().(*net.TCPAddr).Port),
		Service:      service,
		Issuer:       "e2e-token-server",
		pushUser:     pushUser,
		pushPassword: pushPassword,
		key:          key,
		keyID:        libtrustKeyID(spki),
		certPEM:      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /token", ts.serveToken)
	ts.server = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = ts.server.Serve(l) }()
	return ts, nil
}

// Close stops serving tokens.
func (ts *TokenServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = ts.server.Shutdown(ctx)
}

// Issued returns the tokens handed out so far.
func (ts *TokenServer) Issued() []IssuedToken {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.issued)
}

func (ts *TokenServer) serveToken(w http.ResponseWriter, r *http.Request) {
	user, password, hasBasic := r.BasicAuth()
	if hasBasic && (user != ts.pushUser || password != ts.pushPassword) {
		http.Error(w, "bad credentials", http.StatusUnauthorized)
		return
	}
	if got := r.URL.Query().Get("service"); got != ts.Service {
		http.Error(w, fmt.Sprintf("unknown service %q", got), http.StatusBadRequest)
		return
	}
	var access []accessEntry
	var granted []string
	for _, scope := range r.URL.Query()["scope"] {
		// Clients may also send several scopes space-separated in one parameter.
		for s := range strings.FieldsSeq(scope) {
			entry, err := parseScope(s)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if !hasBasic {
				ts.mu.Lock()
				private := ts.private[entry.Name]
				ts.mu.Unlock()
				entry.Actions = slices.DeleteFunc(entry.Actions, func(a string) bool { return a != "pull" || private })
			}
			access = append(access, entry)
			granted = append(granted, entry.Type+":"+entry.Name+":"+strings.Join(entry.Actions, ","))
		}
	}
	now := time.Now()
	token, err := ts.sign(user, access, now)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ts.mu.Lock()
	ts.issued = append(ts.issued, IssuedToken{User: user, Access: granted})
	ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token":        token,
		"access_token": token,
		"expires_in":   300,
		"issued_at":    now.UTC().Format(time.RFC3339),
	})
}

// parseScope splits "repository:name:pull,push"; a name may itself contain colons
// (a registry host with a port), so the type is the first field and the actions the last.
func parseScope(s string) (accessEntry, error) {
	typ, rest, ok := strings.Cut(s, ":")
	i := strings.LastIndex(rest, ":")
	if !ok || i <= 0 {
		return accessEntry{}, fmt.Errorf("malformed scope %q", s)
	}
	return accessEntry{Type: typ, Name: rest[:i], Actions: strings.Split(rest[i+1:], ",")}, nil
}

// sign builds the RS256 JWT the registry verifies against the certificate bundle, finding
// the key by its libtrust key ID in the header.
func (ts *TokenServer) sign(subject string, access []accessEntry, now time.Time) (string, error) {
	jti, err := randomHex(8)
	if err != nil {
		return "", err
	}
	if access == nil {
		access = []accessEntry{}
	}
	header, err := json.Marshal(map[string]string{"typ": "JWT", "alg": "RS256", "kid": ts.keyID})
	if err != nil {
		return "", fmt.Errorf("encoding token header: %w", err)
	}
	claims, err := json.Marshal(map[string]any{
		"iss":    ts.Issuer,
		"sub":    subject,
		"aud":    ts.Service,
		"exp":    now.Add(5 * time.Minute).Unix(),
		"nbf":    now.Add(-time.Minute).Unix(),
		"iat":    now.Unix(),
		"jti":    jti,
		"access": access,
	})
	if err != nil {
		return "", fmt.Errorf("encoding token claims: %w", err)
	}
	enc := base64.RawURLEncoding
	payload := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(payload))
	sig, err := rsa.SignPKCS1v15(rand.Reader, ts.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("signing token: %w", err)
	}
	return payload + "." + enc.EncodeToString(sig), nil
}

// libtrustKeyID is the key ID docker/libtrust derives from a public key: the SHA-256 of the
// DER SubjectPublicKeyInfo, first 240 bits, base32 without padding, in colon-joined groups
// of four.
func libtrustKeyID(spki []byte) string {
	sum := sha256.Sum256(spki)
	b32 := strings.TrimRight(base32.StdEncoding.EncodeToString(sum[:30]), "=")
	var groups []string
	for i := 0; i < len(b32); i += 4 {
		groups = append(groups, b32[i:min(i+4, len(b32))])
	}
	return strings.Join(groups, ":")
}
