package harness

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"k8s.io/client-go/tools/clientcmd"
)

// Fault answers a request in place of the upstream, or returns false to let it through.
type Fault func(w http.ResponseWriter, r *http.Request) bool

// SeenRequest is one request a FaultProxy received.
type SeenRequest struct {
	Method, Path string
	// Authorization reports whether the request carried an Authorization header.
	Authorization bool
}

// FaultProxy is a reverse proxy in front of a real part (the registry, its token server, the
// API server) that injects faults: each request first goes to the current Fault. For a
// registry it also rewrites the bearer challenge's realm to its own /__token path and forwards
// that path to the real token endpoint, so token requests pass through it too.
type FaultProxy struct {
	// Host is host:port of the proxy ("localhost:PORT" for a registry, so clients speak http);
	// URL its base URL.
	Host, URL string

	srv      *httptest.Server
	upstream *url.URL
	mu       sync.Mutex
	fault    Fault
	realm    *url.URL // the real token endpoint, learned from the first challenge
	seen     []SeenRequest
}

var challengeRealm = regexp.MustCompile(`realm="([^"]+)"`)

// tokenPath is where a registry FaultProxy serves the token endpoint it fronts.
const tokenPath = "/__token"

// StartRegistryProxy starts a FaultProxy in front of a registry on http://localhost.
func StartRegistryProxy(registryHost string) (*FaultProxy, error) {
	p := &FaultProxy{upstream: &url.URL{Scheme: "http", Host: registryHost}}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	p.srv.Start()
	_, port, _ := net.SplitHostPort(p.srv.Listener.Addr().String())
	p.Host = "localhost:" + port
	p.URL = "http://" + p.Host
	return p, nil
}

// StartAPIProxy starts a FaultProxy over TLS in front of an API server (whose certificate is
// not checked: the proxy only relays).
func StartAPIProxy(apiServer string) (*FaultProxy, error) {
	u, err := url.Parse(apiServer)
	if err != nil {
		return nil, fmt.Errorf("API server URL %q: %w", apiServer, err)
	}
	p := &FaultProxy{upstream: u}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	p.srv.StartTLS()
	p.URL, p.Host = p.srv.URL, strings.TrimPrefix(p.srv.URL, "https://")
	return p, nil
}

// Close stops the proxy.
func (p *FaultProxy) Close() { p.srv.Close() }

// SetFault makes f answer every request from now on (nil: none).
func (p *FaultProxy) SetFault(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = f
}

// Seen returns the requests received since the last call, and forgets them.
func (p *FaultProxy) Seen() []SeenRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := p.seen
	p.seen = nil
	return seen
}

// IsToken reports whether r asks the token endpoint the proxy fronts.
func IsToken(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, tokenPath) }

// IsManifest reports whether r asks a manifest with method ("" for any).
func IsManifest(r *http.Request, method string) bool {
	return strings.Contains(r.URL.Path, "/manifests/") && (method == "" || r.Method == method)
}

func (p *FaultProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	fault, realm := p.fault, p.realm
	p.seen = append(
		p.seen,
		SeenRequest{Method: r.Method, Path: r.URL.Path, Authorization: r.Header.Get("Authorization") != ""},
	)
	p.mu.Unlock()
	if fault != nil && fault(w, r) {
		return
	}
	target := p.upstream
	if IsToken(r) && realm != nil {
		target = &url.URL{Scheme: realm.Scheme, Host: realm.Host}
		r.URL.Path = realm.Path + strings.TrimPrefix(r.URL.Path, tokenPath)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
		},
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // a relay on loopback
		ModifyResponse: func(resp *http.Response) error {
			p.rewriteChallenge(resp)
			return nil
		},
		FlushInterval: -1,
	}
	rp.ServeHTTP(w, r)
}

// rewriteChallenge points a bearer challenge's realm at the proxy, remembering the real one.
func (p *FaultProxy) rewriteChallenge(resp *http.Response) {
	values := resp.Header.Values("WWW-Authenticate")
	for i, v := range values {
		m := challengeRealm.FindStringSubmatch(v)
		if m == nil || !strings.HasPrefix(strings.ToLower(v), "bearer") {
			continue
		}
		if u, err := url.Parse(m[1]); err == nil {
			p.mu.Lock()
			p.realm = u
			p.mu.Unlock()
			values[i] = strings.Replace(v, m[0], `realm="`+p.URL+tokenPath+`"`, 1)
		}
	}
	if len(values) > 0 {
		resp.Header.Del("WWW-Authenticate")
		for _, v := range values {
			resp.Header.Add("WWW-Authenticate", v)
		}
	}
}

// WriteKubeconfig writes a copy of kubeconfig whose clusters point at the proxy (trusting its
// certificate) to path.
func (p *FaultProxy) WriteKubeconfig(kubeconfig, path string) error {
	return RedirectKubeconfig(
		kubeconfig,
		path,
		p.URL,
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw}),
	)
}

// RedirectKubeconfig writes a copy of kubeconfig whose clusters point at server (with caPEM)
// to path.
func RedirectKubeconfig(kubeconfig, path, server string, caPEM []byte) error {
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		return fmt.Errorf("loading %s: %w", kubeconfig, err)
	}
	for _, c := range cfg.Clusters {
		c.Server, c.CertificateAuthority, c.CertificateAuthorityData = server, "", caPEM
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// Respond is a Fault that answers status with headers and body.
func Respond(status int, headers map[string]string, body string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// ResetMidResponse answers with the start of a response, then closes the connection.
func ResetMidResponse(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	// The status line and a header, then the connection goes: the headers never end.
	_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\n")
	_ = buf.Flush()
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0) // RST, not FIN
	}
	_ = conn.Close()
}
