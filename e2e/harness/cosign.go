package harness

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/tracebloc/image-refresh/internal/testutil/tools"
)

// Cosign is one real cosign CLI (tools.Cosign3 or tools.Cosign2), offline: its own HOME (the
// TUF cache), a DOCKER_CONFIG with the registries' pusher credentials, keys without password.
type Cosign struct {
	Bin string
	dir string
	env []string
}

// NewCosign isolates cosign (tools.Cosign3 or tools.Cosign2) under dir; auths are the
// credentials per registry host it pushes and pulls with.
func NewCosign(tool, dir string, auths map[string]authn.Authenticator) (*Cosign, error) {
	bin, err := tools.Lookup(tool)
	if err != nil {
		return nil, err
	}
	home := filepath.Join(dir, "home")
	docker := filepath.Join(dir, "docker")
	for _, d := range []string{home, docker} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("creating cosign dir: %w", err)
		}
	}
	if err := WriteDockerConfig(filepath.Join(docker, "config.json"), auths); err != nil {
		return nil, err
	}
	env := append(baseEnv(), "HOME="+home, "DOCKER_CONFIG="+docker, "COSIGN_PASSWORD=", "COSIGN_YES=true")
	return &Cosign{Bin: bin, dir: dir, env: env}, nil
}

// WriteDockerConfig writes a Docker config.json with basic credentials per registry host.
func WriteDockerConfig(path string, auths map[string]authn.Authenticator) error {
	entries := map[string]any{}
	for host, a := range auths {
		cfg, err := a.Authorization()
		if err != nil {
			return fmt.Errorf("credentials for %s: %w", host, err)
		}
		entries[host] = map[string]string{
			"auth": base64.StdEncoding.EncodeToString([]byte(cfg.Username + ":" + cfg.Password)),
		}
	}
	data, err := json.Marshal(map[string]any{"auths": entries})
	if err != nil {
		return fmt.Errorf("encoding docker config: %w", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("writing docker config: %w", err)
	}
	return nil
}

// Try runs cosign and reports its exit code without judging it.
func (c *Cosign) Try(ctx context.Context, args ...string) (*Result, error) {
	return run(ctx, c.env, c.dir, c.Bin, args...)
}

// Run runs cosign and fails on a non-zero exit.
func (c *Cosign) Run(ctx context.Context, args ...string) (*Result, error) {
	return mustSucceed(c.Try(ctx, args...))
}

// CosignKey is a key pair as cosign writes it: an encrypted private key and a PEM public key.
type CosignKey struct {
	Name       string
	Private    string // path of <name>.key
	Public     string // path of <name>.pub
	PublicPEM  []byte
	PrivateKey crypto.PrivateKey // set for imported keys only
}

// GenerateKeyPair runs `cosign generate-key-pair` (ECDSA P-256) into dir/<name>.{key,pub}.
func (c *Cosign) GenerateKeyPair(ctx context.Context, name string) (*CosignKey, error) {
	prefix := filepath.Join(c.dir, name)
	if _, err := c.Run(ctx, "generate-key-pair", "--output-key-prefix", prefix); err != nil {
		return nil, fmt.Errorf("generating key pair %s: %w", name, err)
	}
	return loadCosignKey(name, prefix, nil)
}

// ImportKeyPair writes key as a PKCS#8 PEM and runs `cosign import-key-pair` on it.
func (c *Cosign) ImportKeyPair(ctx context.Context, name string, key crypto.PrivateKey) (*CosignKey, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding key %s as PKCS#8: %w", name, err)
	}
	in := filepath.Join(c.dir, name+".pkcs8.pem")
	if err := os.WriteFile(in, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("writing key %s: %w", name, err)
	}
	prefix := filepath.Join(c.dir, name)
	if _, err := c.Run(ctx, "import-key-pair", "--key", in, "--output-key-prefix", prefix, "--yes"); err != nil {
		return nil, fmt.Errorf("importing key pair %s: %w", name, err)
	}
	return loadCosignKey(name, prefix, key)
}

func loadCosignKey(name, prefix string, key crypto.PrivateKey) (*CosignKey, error) {
	pub, err := os.ReadFile(prefix + ".pub")
	if err != nil {
		return nil, fmt.Errorf("reading public key %s: %w", name, err)
	}
	return &CosignKey{Name: name, Private: prefix + ".key", Public: prefix + ".pub", PublicPEM: pub, PrivateKey: key}, nil
}

// SignOffline runs `cosign sign` with key on ref (host/repo@sha256:…), no transparency log, plain
// http; extra are further flags (e.g. --new-bundle-format=false). cosign 2 has no signing config.
func (c *Cosign) SignOffline(ctx context.Context, key *CosignKey, ref string, extra ...string) error {
	args := []string{"sign", "--yes", "--key", key.Private, "--tlog-upload=false", "--allow-http-registry"}
	if !strings.HasSuffix(c.Bin, tools.Cosign2) {
		args = append(args, "--use-signing-config=false")
	}
	args = append(append(args, extra...), ref)
	if _, err := c.Run(ctx, args...); err != nil {
		return fmt.Errorf("signing %s with %s: %w", ref, key.Name, err)
	}
	return nil
}

// VerifyOffline runs `cosign verify --key` on ref without the transparency log; its verdict is
// the exit code in the result.
func (c *Cosign) VerifyOffline(ctx context.Context, key *CosignKey, ref string, extra ...string) (*Result, error) {
	args := append(
		[]string{"verify", "--key", key.Public, "--insecure-ignore-tlog=true", "--allow-http-registry"},
		extra...)
	return c.Try(ctx, append(args, ref)...)
}

// Pusher is the registry's pusher credentials (push and pull everywhere).
func (r *Registry) Pusher() authn.Authenticator { return r.pusher }
