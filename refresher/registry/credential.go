package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// anonymous is the identity of a request that carries no credentials.
const anonymous = "anonymous"

// InsecureRegistriesField is the config field that lets a registry's credentials travel over
// plain HTTP.
const InsecureRegistriesField = "spec.insecureRegistries"

// InsecureCredentialsError is the failure of a request not sent because it would carry
// credentials (a Basic Authorization header, a password or refresh_token form field, or a
// bearer token not granted anonymously) over plain HTTP to a host that is not loopback, for a
// registry the config does not list in spec.insecureRegistries: anyone on the path could read
// them.
type InsecureCredentialsError struct {
	// Host is where the request would have gone (host[:port]); Registry is the registry the
	// lookup is for ("" when unknown).
	Host, Registry string
}

func (e *InsecureCredentialsError) Error() string {
	if e.Registry == "" {
		return fmt.Sprintf("credentials not sent over plain HTTP to %s: the registry they are for is unknown", e.Host)
	}
	return fmt.Sprintf(
		"credentials for %s not sent over plain HTTP to %s: list %q in %s to allow it",
		e.Registry,
		e.Host,
		e.Registry,
		InsecureRegistriesField,
	)
}

// plainHTTP returns an InsecureCredentialsError if req, which carries credentials for
// registry, would send them over plain HTTP where that is not allowed: to a loopback host
// (the bytes never leave the machine; Docker treats 127.0.0.0/8 as insecure by default) or for
// a registry listed insecure.
func (t *runTransport) plainHTTP(req *http.Request, registry string) error {
	if req.URL.Scheme != "http" || isLoopback(req.URL.Hostname()) {
		return nil
	}
	if registry != "" && t.insecure[strings.ToLower(registry)] {
		return nil
	}
	return &InsecureCredentialsError{Host: req.URL.Host, Registry: registry}
}

// isAnonymousBearer reports whether an Authorization header is a bearer token this run was
// granted anonymously; any other value (Basic, a registry token from the keychain, a token
// bought with credentials) is a credential.
func (t *runTransport) isAnonymousBearer(authorization string) bool {
	scheme, token, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.anonymousTokens[fingerprint("token", strings.TrimSpace(token))]
}

// isLoopback reports whether host (no port) is localhost, in 127.0.0.0/8 or ::1.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// credentialIdentity is who a token request asks as: anonymous, or a fingerprint of the
// credentials it carries — an Authorization header (GET, go-containerregistry's Basic), or
// the OAuth form's refresh_token or username and password (POST). Never the value itself.
func credentialIdentity(authorization string, form url.Values) string {
	var parts []string
	if authorization != "" {
		parts = append(parts, "authorization", authorization)
	}
	if v := form.Get("refresh_token"); v != "" {
		parts = append(parts, "refresh_token", v)
	}
	if u, p := form.Get("username"), form.Get("password"); u != "" || p != "" {
		parts = append(parts, "password", u, p)
	}
	if len(parts) == 0 {
		return anonymous
	}
	return fingerprint(parts...)
}

// fingerprint is a sha256 of parts (length-prefixed, so no two lists collide), shortened: it
// tells credentials apart in cache keys without holding them.
func fingerprint(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)[:16])
}
