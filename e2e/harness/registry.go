package harness

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/tracebloc/image-refresh/internal/testutil/tools"
)

// Registry is Debian's docker-registry (distribution) on loopback with token authentication
// through a TokenServer. Its storage survives Stop/Start, so a test can take it down and
// bring it back on the same address.
type Registry struct {
	// Host is "localhost:PORT": go-containerregistry talks plain http to localhost.
	Host string
	// Tokens is the registry's token server.
	Tokens *TokenServer

	bin, dir, config string
	port             int
	proc             *process
	pusher           authn.Authenticator
	front            string
	frontServer      *http.Server
}

// PullSecret is a kubernetes.io/dockerconfigjson payload with the pusher's credentials (who
// may pull everything, including the repositories made private with Tokens.RequireAuth), or
// with a wrong password when wrong is set.
func (r *Registry) PullSecret(wrong bool) ([]byte, error) {
	cfg, err := r.pusher.Authorization()
	if err != nil {
		return nil, err
	}
	password := cfg.Password
	if wrong {
		password += "-wrong"
	}
	auth := base64.StdEncoding.EncodeToString([]byte(cfg.Username + ":" + password))
	return json.Marshal(map[string]any{"auths": map[string]any{r.Host: map[string]string{
		"username": cfg.Username, "password": password, "auth": auth,
	}}})
}

// StartRegistry starts a token server and a registry with storage and logs under dir.
func StartRegistry(ctx context.Context, dir string) (_ *Registry, err error) {
	return StartRegistryAt(ctx, dir, "")
}

// StartRegistryAt is StartRegistry serving on address (an IP of this machine, such as a
// node's bridge gateway, so that pods and containerd reach it) instead of loopback. There a
// front server on address:PORT serves the token realm (/token) on the registry's own
// host:port — go-containerregistry and containerd accept a realm on a private IP only there —
// and proxies everything else to docker-registry on loopback. Empty address is StartRegistry.
func StartRegistryAt(ctx context.Context, dir, address string) (_ *Registry, err error) {
	bin, err := tools.Lookup(tools.DockerRegistry)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating registry dir: %w", err)
	}
	password, err := randomHex(8)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	r := &Registry{
		Host:   fmt.Sprintf("localhost:%d", ports[0]),
		front:  address,
		bin:    bin,
		dir:    dir,
		config: filepath.Join(dir, "registry.yml"),
		port:   ports[0],
		pusher: &authn.Basic{Username: "pusher", Password: password},
	}
	if r.Tokens, err = startTokenServer("e2e-registry", "pusher", password); err != nil {
		return nil, err
	}
	if address != "" {
		r.Host = net.JoinHostPort(address, strconv.Itoa(ports[1]))
		r.Tokens.Realm = "http://" + r.Host + "/token"
	}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	certs := filepath.Join(dir, "token-issuer.crt")
	if err := os.WriteFile(certs, r.Tokens.certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("writing token certificate: %w", err)
	}
	config := fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
auth:
  token:
    realm: %s
    service: %s
    issuer: %s
    rootcertbundle: %s
`, filepath.Join(dir, "storage"), hostPort(r.port), r.Tokens.Realm, r.Tokens.Service, r.Tokens.Issuer, certs)
	if err := os.WriteFile(r.config, []byte(config), 0o644); err != nil {
		return nil, fmt.Errorf("writing registry config: %w", err)
	}
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	if address != "" {
		if err := r.serveFront(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// serveFront serves /token and proxies the rest to docker-registry, on r.Host.
func (r *Registry) serveFront() error {
	l, err := net.Listen("tcp", r.Host)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", r.Host, err)
	}
	backend := &url.URL{Scheme: "http", Host: hostPort(r.port)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /token", r.Tokens.serveToken)
	mux.Handle("/", httputil.NewSingleHostReverseProxy(backend))
	r.frontServer = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.frontServer.Serve(l) }()
	return nil
}

// Start (re)starts the registry process and waits until it challenges for a token.
func (r *Registry) Start(ctx context.Context) error {
	p, err := startProcess(r.dir, "docker-registry", r.bin, "serve", r.config)
	if err != nil {
		return err
	}
	r.proc = p
	return p.waitReady(ctx, 30*time.Second, func(ctx context.Context) error {
		return r.challenges(ctx)
	})
}

// challenges checks that /v2/ answers 401 with a Bearer challenge naming the token realm.
func (r *Registry) challenges(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+hostPort(r.port)+"/v2/", nil)
	if err != nil {
		return fmt.Errorf("building registry ping: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("pinging registry: %w", err)
	}
	resp.Body.Close()
	challenge := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(challenge, r.Tokens.Realm) {
		return fmt.Errorf("registry ping: %s, challenge %q", resp.Status, challenge)
	}
	return nil
}

// Stop takes the registry down (the token server stays up), as in an outage.
func (r *Registry) Stop() { r.proc.stop(5 * time.Second) }

// Close stops the registry and its token server.
func (r *Registry) Close() {
	if r.proc != nil {
		r.Stop()
	}
	if r.Tokens != nil {
		r.Tokens.Close()
	}
	if r.frontServer != nil {
		_ = r.frontServer.Close()
	}
}

// Dir is where the registry keeps its storage, config and log.
func (r *Registry) Dir() string { return r.dir }

// Repository is the full name of repo in this registry, e.g. "localhost:PORT/team/app".
func (r *Registry) Repository(repo string) string { return r.Host + "/" + repo }

// PushImage pushes a fresh random single-platform image to repo:tag (repo without the
// registry host) and returns its digest.
func (r *Registry) PushImage(ctx context.Context, repo, tag string) (string, error) {
	img, err := random.Image(512, 1)
	if err != nil {
		return "", fmt.Errorf("generating image: %w", err)
	}
	return r.push(ctx, repo, tag, img)
}

// PushIndex pushes a fresh random multi-platform index (two images) to repo:tag and
// returns the index digest, the one the kubelet resolves for the tag.
func (r *Registry) PushIndex(ctx context.Context, repo, tag string) (string, error) {
	idx, err := random.Index(512, 1, 2)
	if err != nil {
		return "", fmt.Errorf("generating index: %w", err)
	}
	return r.push(ctx, repo, tag, idx)
}

// PushIndexImage pushes a built image index (e.g. ociimage.Result.Index) to repo:tag and
// returns its digest.
func (r *Registry) PushIndexImage(ctx context.Context, repo, tag string, idx v1.ImageIndex) (string, error) {
	return r.push(ctx, repo, tag, idx)
}

func (r *Registry) push(ctx context.Context, repo, tag string, t remote.Taggable) (string, error) {
	ref, err := name.NewTag(r.Repository(repo) + ":" + tag)
	if err != nil {
		return "", fmt.Errorf("parsing tag: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	opts := []remote.Option{remote.WithAuth(r.pusher), remote.WithContext(ctx)}
	var digest v1.Hash
	switch v := t.(type) {
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, v, opts...)
		if err == nil {
			digest, err = v.Digest()
		}
	case v1.Image:
		err = remote.Write(ref, v, opts...)
		if err == nil {
			digest, err = v.Digest()
		}
	default:
		return "", fmt.Errorf("pushing %s: unsupported artifact %T", ref, t)
	}
	if err != nil {
		return "", fmt.Errorf("pushing %s: %w", ref, err)
	}
	return digest.String(), nil
}

// DeleteManifest deletes the manifest repo@digest, and with it every tag pointing at it.
func (r *Registry) DeleteManifest(ctx context.Context, repo, digest string) error {
	ref, err := name.NewDigest(r.Repository(repo) + "@" + digest)
	if err != nil {
		return fmt.Errorf("parsing digest reference: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := remote.Delete(ref, remote.WithAuth(r.pusher), remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("deleting %s: %w", ref, err)
	}
	return nil
}

// Resolve returns the digest repo:tag resolves to, anonymously (as the refresher sees it).
func (r *Registry) Resolve(ctx context.Context, repo, tag string) (string, error) {
	ref, err := name.NewTag(r.Repository(repo) + ":" + tag)
	if err != nil {
		return "", fmt.Errorf("parsing tag: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	desc, err := remote.Head(ref, remote.WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", ref, err)
	}
	return desc.Digest.String(), nil
}
