package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tracebloc/image-refresh/internal/cli"
	"github.com/tracebloc/image-refresh/internal/ociimage"
	"github.com/tracebloc/image-refresh/internal/version"
)

const (
	testRevision = "0123456789abcdef0123456789abcdef01234567"
	testCreated  = "1793534400" // 2026-11-01T12:00:00Z
)

// run runs imagebuild with args.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.Run(ctx, newProgram(), args, nil, stdout, stderr)
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"nothing to do", []string{"--out", ""}, "nothing to do"},
		{"argument", []string{"extra"}, "unexpected arguments"},
		{"unknown flag", []string{"--bogus"}, "unknown flag"},
		{"bad platform", []string{"--created", "1", "--platform", "linux"}, "want os/arch"},
		{"windows", []string{"--created", "1", "--platform", "windows/amd64"}, "only linux"},
		{"bad created", []string{"--created", "yesterday"}, "want unix seconds"},
		{"missing CA file", []string{"--created", "1", "--ca-file", filepath.Join(dir, "none.pem")}, "no such file"},
		{"CA file without certificates", []string{"--created", "1", "--ca-file", notPEM}, "trailing data"},
		{"bad push timeout", []string{"--push-timeout", "0s"}, "--push-timeout must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tc.args, &stdout, &stderr)
			if code != cli.ExitUsage || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), cli.ExitUsage, tc.want)
			}
		})
	}
}

func TestCreatedTime(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	commit, err := goOutput(t.Context(), root, "git", "log", "-1", "--format=%ct")
	if err != nil {
		t.Fatalf("the commit-time default needs a git checkout: %v", err)
	}
	tests := []struct {
		name, flag, env string
		want            string // unix seconds
		err             string
	}{
		{"flag wins", "100", "200", "100", ""},
		{"SOURCE_DATE_EPOCH", "", "200", "200", ""},
		{"commit time", "", "", commit, ""},
		{"negative", "-5", "", "", "want unix seconds"},
		{"bad SOURCE_DATE_EPOCH", "", "soon", "", "SOURCE_DATE_EPOCH"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := createdTime(t.Context(), tc.flag, tc.env, root)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("createdTime = %v, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil || fmt.Sprint(got.Unix()) != tc.want {
				t.Fatalf("createdTime = %v (%d), %v; want %s", got, got.Unix(), err, tc.want)
			}
		})
	}
	if _, err := createdTime(t.Context(), "", "", t.TempDir()); err == nil || !strings.Contains(err.Error(),
		"pass --created or SOURCE_DATE_EPOCH") {
		t.Errorf("createdTime outside a checkout = %v, want a hint", err)
	}
}

// built is one run of the command: its stdout and the layout it wrote.
type built struct {
	stdout string
	layout string
	index  v1.ImageIndex
	digest v1.Hash
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

var (
	buildDir  string
	buildOnce sync.Once
	builds    [2]*built
	buildErr  error
	testRoot  *testPKI
)

// refresherImages runs the command twice, in two layouts, with the same flags and a test
// root CA as --ca-file: two independent go builds of each platform.
func refresherImages(t *testing.T) [2]*built {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the refresher for two architectures, twice")
	}
	buildOnce.Do(func() {
		var err error
		if testRoot, err = newTestPKI(); err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "imagebuild-test-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		caFile := filepath.Join(dir, "root.pem")
		if err := os.WriteFile(caFile, testRoot.rootPEM, 0o644); err != nil {
			buildErr = err
			return
		}
		for i := range builds {
			out := filepath.Join(dir, fmt.Sprintf("image-%d", i))
			var stdout, stderr bytes.Buffer
			began := time.Now()
			code := run(context.Background(), []string{
				"--out", out, "--revision", testRevision, "--created", testCreated,
				"--licenses", "Apache-2.0", "--ca-file", caFile,
			}, &stdout, &stderr)
			if code != cli.ExitOK {
				buildErr = fmt.Errorf("build %d: exit %d\n%s", i, code, stderr.String())
				return
			}
			fmt.Fprintf(os.Stderr, "imagebuild test: build %d took %s\n%s", i, time.Since(began).Round(time.Millisecond),
				stdout.String())
			b, err := readLayout(out)
			if err != nil {
				buildErr = err
				return
			}
			b.stdout = stdout.String()
			builds[i] = b
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builds
}

func readLayout(dir string) (*built, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("reading layout %s: %w", dir, err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("reading layout %s: %w", dir, err)
	}
	m, err := top.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading layout %s: %w", dir, err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].MediaType != types.OCIImageIndex {
		return nil, fmt.Errorf("layout %s index.json: %+v, want one image index", dir, m.Manifests)
	}
	if got := m.Manifests[0].Annotations[ociimage.AnnotationRefName]; got != version.Version {
		return nil, fmt.Errorf("layout %s names the index %q, want %q", dir, got, version.Version)
	}
	idx, err := top.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		return nil, fmt.Errorf("reading the index of %s: %w", dir, err)
	}
	return &built{layout: dir, index: idx, digest: m.Manifests[0].Digest}, nil
}

// layerFiles reads the regular files of img's single layer.
func layerFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("image has %d layers, want exactly 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if files[hdr.Name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func platformImage(t *testing.T, idx v1.ImageIndex, platform string) v1.Image {
	t.Helper()
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.String() == platform {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("index has no %s image", platform)
	return nil
}

func TestRefresherImageReproducible(t *testing.T) {
	b := refresherImages(t)
	if b[0].digest != b[1].digest {
		t.Fatalf("two builds of the same input: index %s and %s", b[0].digest, b[1].digest)
	}
	if !regexp.MustCompile(`(?m)^index\s+` + regexp.QuoteMeta(b[0].digest.String()) + `$`).MatchString(b[0].stdout) {
		t.Errorf("stdout does not print the index digest %s:\n%s", b[0].digest, b[0].stdout)
	}
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		d, err := platformImage(t, b[0].index, p).Digest()
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(regexp.QuoteMeta(p) + `\s+` + regexp.QuoteMeta(d.String()) +
			`\s+\d+ bytes`).MatchString(b[0].stdout) {
			t.Errorf("stdout lacks %s %s and its size:\n%s", p, d, b[0].stdout)
		}
	}
}

// maxCompressedImage is the budget of one platform's image, compressed.
const maxCompressedImage = 7 << 20

func TestRefresherImage(t *testing.T) {
	b := refresherImages(t)[0]
	m, err := b.index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, d := range m.Manifests {
		platforms = append(platforms, d.Platform.String())
	}
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(platforms, want) {
		t.Fatalf("index platforms %v, want %v", platforms, want)
	}
	wantLabels := map[string]string{
		ociimage.AnnotationVersion: version.Version, ociimage.AnnotationRevision: testRevision,
		ociimage.AnnotationCreated: "2026-11-01T12:00:00Z", ociimage.AnnotationSource: defaultSource,
		ociimage.AnnotationLicenses: "Apache-2.0", ociimage.AnnotationTitle: title,
		ociimage.AnnotationDescription: description,
	}
	for k, v := range wantLabels {
		if m.Annotations[k] != v {
			t.Errorf("index annotation %s = %q, want %q", k, m.Annotations[k], v)
		}
	}
	tests := []struct {
		platform, arch string
	}{{"linux/amd64", "amd64"}, {"linux/arm64", "arm64"}}
	for _, tc := range tests {
		t.Run(tc.platform, func(t *testing.T) {
			img := platformImage(t, b.index, tc.platform)
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			c := cfg.Config
			if cfg.OS+"/"+cfg.Architecture != tc.platform {
				t.Errorf("config platform %s/%s", cfg.OS, cfg.Architecture)
			}
			if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/refresher"}) || len(c.Cmd) != 0 {
				t.Errorf("entrypoint %q cmd %q, want the refresher alone", c.Entrypoint, c.Cmd)
			}
			if c.User != "65532:65532" || c.WorkingDir != "/" {
				t.Errorf("user %q workdir %q", c.User, c.WorkingDir)
			}
			if !slices.Contains(c.Env, "PATH=/usr/local/bin:/usr/bin:/bin") || !slices.Contains(c.Env,
				"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt") {
				t.Errorf("env %q", c.Env)
			}
			for k, v := range wantLabels {
				if c.Labels[k] != v {
					t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
				}
			}
			// The budget that keeps pulls cheap on every node the CronJob lands on.
			layers, err := img.Layers()
			if err != nil || len(layers) != 1 {
				t.Fatalf("layers %d, %v; want one", len(layers), err)
			}
			if size, err := layers[0].Size(); err != nil || size > maxCompressedImage {
				t.Errorf("compressed layer %d bytes (%v), budget %d (7 MiB)", size, err, maxCompressedImage)
			}
			files := layerFiles(t, img)
			bin := files["usr/local/bin/refresher"]
			if err := ociimage.StaticELF(bin, tc.arch); err != nil {
				t.Errorf("the image's refresher: %v", err)
			}
			if _, ok := files["bin/sh"]; ok {
				t.Error("the image has a shell")
			}
			bundle := parseCerts(t, files["etc/ssl/certs/ca-certificates.crt"])
			if len(bundle) < 100 {
				t.Errorf("CA bundle has %d certificates, want > 100", len(bundle))
			}
			for _, cn := range []string{"ISRG Root X1", "DigiCert Global Root G2", "Amazon Root CA 1",
				testRoot.root.Subject.CommonName} {
				if !slices.ContainsFunc(bundle, func(c *x509.Certificate) bool { return c.Subject.CommonName == cn }) {
					t.Errorf("CA bundle lacks %s", cn)
				}
			}
			if tc.arch != runtime.GOARCH {
				return
			}
			path := extract(t, bin, "refresher")
			out, err := exec.CommandContext(t.Context(), path, "--version").CombinedOutput()
			if err != nil || !strings.Contains(string(out), version.Version) {
				t.Errorf("refresher --version from the image: %v, %q; want %s", err, out, version.Version)
			}
		})
	}
	if !slices.Contains([]string{"amd64", "arm64"}, runtime.GOARCH) || runtime.GOOS != "linux" {
		t.Errorf("running the image's binary needs a linux/amd64 or linux/arm64 host, this is %s/%s", runtime.GOOS,
			runtime.GOARCH)
	}
}

// TestRefresherImageTLS runs the image's refresher with nothing but the image's CA bundle
// against a registry whose certificate chains like a public one: root (in the bundle as the
// --ca-file) → intermediate → leaf, the server sending leaf and intermediate. The registry
// listens on 127.0.0.2, which go-containerregistry reaches over https only (127.0.0.1 and
// localhost would fall back to plain http). The refresher polls the registry while
// dry-running a config whose target it reads from a fake API server.
func TestRefresherImageTLS(t *testing.T) {
	b := refresherImages(t)[0]
	img := platformImage(t, b.index, "linux/"+runtime.GOARCH)
	files := layerFiles(t, img)
	dir := t.TempDir()
	refresher := extract(t, files["usr/local/bin/refresher"], "refresher")
	imageBundle := filepath.Join(dir, "image-ca-certificates.crt")
	if err := os.WriteFile(imageBundle, files["etc/ssl/certs/ca-certificates.crt"], 0o644); err != nil {
		t.Fatal(err)
	}
	public, err := ociimage.CABundle()
	if err != nil {
		t.Fatal(err)
	}
	publicBundle := filepath.Join(dir, "public-ca-certificates.crt")
	if err := os.WriteFile(publicBundle, public, 0o644); err != nil {
		t.Fatal(err)
	}

	reg := startTLSRegistry(t, testRoot)
	repo := reg + "/team/app"
	pool := x509.NewCertPool()
	pool.AddCert(testRoot.root)
	pushTransport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	ref, err := name.NewTag(repo + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, pushed, remote.WithTransport(pushTransport), remote.WithContext(t.Context())); err != nil {
		t.Fatalf("pushing the test image over TLS: %v", err)
	}
	digest, err := pushed.Digest()
	if err != nil {
		t.Fatal(err)
	}

	kubeconfig := fakeAPIServer(t, dir, repo+":v1")
	config := filepath.Join(dir, "refresh.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`apiVersion: image-refresh.io/v1alpha1
kind: RefreshConfig
metadata: {name: tls-check, namespace: tls}
spec:
  images:
  - name: app
    repository: %s
    tag: v1
    action: set-env
    env: APP_IMAGE_DIGEST
    target: {kind: Deployment, name: app, container: app}
    annotation: example.com/last-refreshed-app-digest
`, repo)), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, certFile string
		wantCode       int
		want           string
	}{
		{"the image's bundle", imageBundle, 0, digest.String()},
		{"no bundle", filepath.Join(dir, "nonexistent.crt"), 1, "x509: "},
		{"public roots only", publicBundle, 1, "x509: certificate signed by unknown authority"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), refresher, "--config", config, "--kubeconfig", kubeconfig, "--dry-run",
				"--timeout", "30s")
			home := t.TempDir()
			cmd.Env = []string{
				"HOME=" + home, "DOCKER_CONFIG=" + home,
				"SSL_CERT_DIR=" + filepath.Join(dir, "nonexistent"), "SSL_CERT_FILE=" + tc.certFile,
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode || !strings.Contains(stdout.String()+stderr.String(), tc.want) {
				t.Fatalf("refresher exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, tc.want,
					stdout.String(), stderr.String())
			}
			for _, line := range strings.Split(stdout.String(), "\n") {
				if strings.Contains(line, tc.want) {
					t.Logf("exit %d: %s", code, line)
				}
			}
		})
	}
}

func extract(t *testing.T, data []byte, name string) string {
	t.Helper()
	if len(data) == 0 {
		t.Fatalf("%s not found in the image", name)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// startTLSRegistry serves an in-memory registry over TLS on 127.0.0.2 with the leaf +
// intermediate chain and returns its host:port.
func startTLSRegistry(t *testing.T, pki *testPKI) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("the TLS test needs to listen on 127.0.0.2 (Linux routes 127.0.0.0/8 to lo): %v", err)
	}
	srv := httptest.NewUnstartedServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the negative cases fail handshakes
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.serverCert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return ln.Addr().String()
}

// fakeAPIServer serves the one Deployment the refresher reads (apps/v1 tls/app, container app
// running image) over plain http and returns a kubeconfig for it.
func fakeAPIServer(t *testing.T, dir, image string) string {
	t.Helper()
	deployment := fmt.Sprintf(`{"apiVersion":"apps/v1","kind":"Deployment",`+
		`"metadata":{"name":"app","namespace":"tls","resourceVersion":"1"},
"spec":{"selector":{"matchLabels":{"app":"app"}},"template":{"metadata":{"labels":{"app":"app"}},`+
		`"spec":{"containers":[{"name":"app","image":%q}]}}}}`, image)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/apis/apps/v1/namespaces/tls/deployments/app" {
			http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`,
				http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, deployment)
	}))
	t.Cleanup(srv.Close)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: %q}}]
users: [{name: fake, user: {token: fake}}]
contexts: [{name: fake, context: {cluster: fake, user: fake, namespace: tls}}]
current-context: fake
`, srv.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	return kubeconfig
}

// testPKI is a public-style chain: a root, an intermediate it signed, and a server
// certificate for 127.0.0.2 the intermediate signed.
type testPKI struct {
	root       *x509.Certificate
	rootPEM    []byte
	serverCert tls.Certificate
}

func newTestPKI() (*testPKI, error) {
	now := time.Now()
	newKey := func() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }
	rootKey, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("generating the root key: %w", err)
	}
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "image-refresh Test Root CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, fmt.Errorf("signing the root: %w", err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, fmt.Errorf("parsing the root: %w", err)
	}
	interKey, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("generating the intermediate key: %w", err)
	}
	interTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "image-refresh Test Intermediate CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign,
	}
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, &interKey.PublicKey, rootKey)
	if err != nil {
		return nil, fmt.Errorf("signing the intermediate: %w", err)
	}
	inter, err := x509.ParseCertificate(interDER)
	if err != nil {
		return nil, fmt.Errorf("parsing the intermediate: %w", err)
	}
	leafKey, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("generating the server key: %w", err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "127.0.0.2"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.2")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, inter, &leafKey.PublicKey, interKey)
	if err != nil {
		return nil, fmt.Errorf("signing the server certificate: %w", err)
	}
	return &testPKI{
		root:       root,
		rootPEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}),
		serverCert: tls.Certificate{Certificate: [][]byte{leafDER, interDER}, PrivateKey: leafKey},
	}, nil
}

func parseCerts(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := bytes.TrimSpace(data); len(rest) > 0; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			t.Fatalf("CA bundle has trailing non-PEM data")
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("CA bundle: %v", err)
		}
		certs = append(certs, c)
	}
	return certs
}
