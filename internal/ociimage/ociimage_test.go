package ociimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var testCreated = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func testOptions() Options {
	return Options{
		Package: "./cmd/app",
		Args:    []string{"--serve"},
		Created: testCreated,
		Metadata: Metadata{
			Title: "app", Description: "an app", Version: "v1.2.3", Revision: "0123abc",
			Source: "https://github.com/example/app", Licenses: "Apache-2.0",
		},
		Files: []File{{Path: "/etc/app/app.yaml", Data: []byte("a: 1\n")}},
		Env:   []string{"APP_MODE=test"},
	}
}

// fakeBinaries are stand-ins for compiled programs: Assemble packages bytes as they are.
func fakeBinaries(opts Options) []Binary {
	var bins []Binary
	for _, p := range opts.platforms() {
		bins = append(bins, Binary{Platform: p, Data: []byte("binary for " + p.String())})
	}
	return bins
}

func assemble(t *testing.T, opts Options) *Result {
	t.Helper()
	res, err := Assemble(fakeBinaries(opts), opts)
	if err != nil {
		t.Fatalf("Assemble: %v", err)
	}
	return res
}

type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

// layerEntries reads the single layer of img, in archive order.
func layerEntries(t *testing.T, img v1.Image) []tarEntry {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("image has %d layers, want exactly 1", len(layers))
	}
	mt, err := layers[0].MediaType()
	if err != nil || mt != types.OCILayer {
		t.Fatalf("layer media type %q (%v), want %q", mt, err, types.OCILayer)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var entries []tarEntry
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries
		}
		if err != nil {
			t.Fatalf("reading layer: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading %s: %v", hdr.Name, err)
		}
		entries = append(entries, tarEntry{hdr: hdr, data: data})
	}
}

func fileOf(t *testing.T, img v1.Image, name string) []byte {
	t.Helper()
	for _, e := range layerEntries(t, img) {
		if e.hdr.Name == name {
			return e.data
		}
	}
	t.Fatalf("%s not in the layer", name)
	return nil
}

func TestAssembleIndex(t *testing.T) {
	res := assemble(t, testOptions())
	m, err := res.Index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIImageIndex {
		t.Errorf("index media type %q, want %q", m.MediaType, types.OCIImageIndex)
	}
	var platforms []string
	for _, d := range m.Manifests {
		if d.MediaType != types.OCIManifestSchema1 {
			t.Errorf("descriptor media type %q, want %q", d.MediaType, types.OCIManifestSchema1)
		}
		if d.Platform == nil {
			t.Fatalf("descriptor %s has no platform", d.Digest)
		}
		platforms = append(platforms, d.Platform.String())
	}
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(platforms, want) {
		t.Errorf("index platforms %v, want %v", platforms, want)
	}
	wantAnn := map[string]string{
		AnnotationTitle: "app", AnnotationDescription: "an app", AnnotationVersion: "v1.2.3",
		AnnotationRevision: "0123abc", AnnotationSource: "https://github.com/example/app",
		AnnotationLicenses: "Apache-2.0", AnnotationCreated: "2026-11-01T12:00:00Z",
	}
	for k, v := range wantAnn {
		if m.Annotations[k] != v {
			t.Errorf("index annotation %s = %q, want %q", k, m.Annotations[k], v)
		}
	}
	if d, _ := res.Index.Digest(); d != res.Digest {
		t.Errorf("Result.Digest %s, index digest %s", res.Digest, d)
	}
}

func TestAssembleImages(t *testing.T) {
	res := assemble(t, testOptions())
	tests := []struct{ platform, arch string }{{"linux/amd64", "amd64"}, {"linux/arm64", "arm64"}}
	for i, tc := range tests {
		t.Run(tc.platform, func(t *testing.T) {
			pi := res.Images[i]
			if pi.Platform.String() != tc.platform {
				t.Fatalf("image %d is %s, want %s", i, pi.Platform, tc.platform)
			}
			m, err := pi.Image.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
				t.Errorf("media types manifest %q config %q, want OCI", m.MediaType, m.Config.MediaType)
			}
			if len(m.Layers) != 1 || m.Layers[0].Size != pi.LayerSize {
				t.Errorf("layers %+v, want one of %d bytes", m.Layers, pi.LayerSize)
			}
			if m.Annotations[AnnotationVersion] != "v1.2.3" || m.Annotations[AnnotationCreated] != "2026-11-01T12:00:00Z" {
				t.Errorf("manifest annotations %v", m.Annotations)
			}
			cfg, err := pi.Image.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.OS != "linux" || cfg.Architecture != tc.arch || cfg.Variant != "" {
				t.Errorf("config platform %s/%s/%s, want linux/%s", cfg.OS, cfg.Architecture, cfg.Variant, tc.arch)
			}
			if !cfg.Created.Time.Equal(testCreated) {
				t.Errorf("config created %s, want %s", cfg.Created.Time, testCreated)
			}
			c := cfg.Config
			if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/app"}) || !slices.Equal(c.Cmd, []string{"--serve"}) {
				t.Errorf("entrypoint %q cmd %q", c.Entrypoint, c.Cmd)
			}
			if c.User != "65532:65532" || c.WorkingDir != "/" {
				t.Errorf("user %q workdir %q", c.User, c.WorkingDir)
			}
			wantEnv := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
				"APP_MODE=test"}
			if !slices.Equal(c.Env, wantEnv) {
				t.Errorf("env %q, want %q", c.Env, wantEnv)
			}
			if c.Labels[AnnotationSource] != "https://github.com/example/app" || c.Labels[AnnotationRevision] != "0123abc" ||
				len(c.Labels) != 7 {
				t.Errorf("labels %v", c.Labels)
			}
			if len(cfg.RootFS.DiffIDs) != 1 || len(cfg.History) != 1 || !cfg.History[0].Created.Time.Equal(testCreated) {
				t.Errorf("rootfs %+v history %+v", cfg.RootFS, cfg.History)
			}
			if got := string(fileOf(t, pi.Image, "usr/local/bin/app")); got != "binary for "+tc.platform {
				t.Errorf("binary in the layer is %q", got)
			}
		})
	}
}

func TestAssembleLayer(t *testing.T) {
	res := assemble(t, testOptions())
	entries := layerEntries(t, res.Images[0].Image)
	want := []struct {
		name string
		mode int64
	}{
		{"etc/", 0o755}, {"etc/app/", 0o755}, {"etc/app/app.yaml", 0o644}, {"etc/group", 0o644},
		{"etc/passwd", 0o644}, {"etc/ssl/", 0o755}, {"etc/ssl/certs/", 0o755},
		{"etc/ssl/certs/ca-certificates.crt", 0o644}, {"tmp/", 0o1777}, {"usr/", 0o755},
		{"usr/local/", 0o755}, {"usr/local/bin/", 0o755}, {"usr/local/bin/app", 0o755},
	}
	if len(entries) != len(want) {
		var names []string
		for _, e := range entries {
			names = append(names, e.hdr.Name)
		}
		t.Fatalf("layer entries %q, want %d", names, len(want))
	}
	for i, w := range want {
		h := entries[i].hdr
		if h.Name != w.name || h.Mode != w.mode {
			t.Errorf("entry %d: %s mode %o, want %s mode %o", i, h.Name, h.Mode, w.name, w.mode)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s owned by %d:%d (%q:%q), want 0:0", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if !h.ModTime.Equal(testCreated) {
			t.Errorf("%s dated %s, want %s", h.Name, h.ModTime, testCreated)
		}
	}
}

func TestAssembleReproducible(t *testing.T) {
	base := assemble(t, testOptions()).Digest
	otherCA, _ := testCA(t, "Other CA")
	tests := []struct {
		name   string
		change func(*Options)
		same   bool
	}{
		{"same input", func(*Options) {}, true},
		{"sub-second created", func(o *Options) { o.Created = testCreated.Add(300 * time.Millisecond) }, true},
		{"created in another zone", func(o *Options) { o.Created = testCreated.In(time.FixedZone("X", 3600)) }, true},
		{"another created", func(o *Options) { o.Created = testCreated.Add(time.Second) }, false},
		{"another version", func(o *Options) { o.Metadata.Version = "v1.2.4" }, false},
		{"an extra CA", func(o *Options) { o.ExtraCAs = [][]byte{otherCA} }, false},
		{"another arg", func(o *Options) { o.Args = []string{"--serve=false"} }, false},
		{"one platform", func(o *Options) { o.Platforms = DefaultPlatforms[:1] }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions()
			tc.change(&opts)
			got := assemble(t, opts).Digest
			if (got == base) != tc.same {
				t.Errorf("digest %s vs base %s: same=%v, want same=%v", got, base, got == base, tc.same)
			}
		})
	}
}

func TestCABundle(t *testing.T) {
	caPEM, _ := testCA(t, "Private Registry CA")
	pub, err := CABundle()
	if err != nil {
		t.Fatal(err)
	}
	certs := parsePEMCerts(t, pub)
	if len(certs) < 100 {
		t.Errorf("public bundle has %d certificates, want > 100", len(certs))
	}
	// GHCR chains to DigiCert Global Root G2, Docker Hub to Amazon Root CA 1, Let's Encrypt
	// to ISRG Root X1.
	for _, cn := range []string{"ISRG Root X1", "DigiCert Global Root G2", "Amazon Root CA 1"} {
		if !slices.ContainsFunc(certs, func(c *x509.Certificate) bool { return c.Subject.CommonName == cn }) {
			t.Errorf("bundle lacks %s", cn)
		}
	}
	with, err := CABundle(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	all := parsePEMCerts(t, with)
	if len(all) != len(certs)+1 || all[len(all)-1].Subject.CommonName != "Private Registry CA" {
		t.Errorf("bundle with an extra CA: %d certificates, last %q", len(all), all[len(all)-1].Subject.CommonName)
	}
}

func TestCABundleRejects(t *testing.T) {
	_, leafPEM := testCA(t, "CA")
	tests := []struct {
		name, data, want string
	}{
		{"empty", "", "no PEM certificate"},
		{"not PEM", "hello", "trailing data"},
		{"a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", `"PRIVATE KEY" is not a CERTIFICATE`},
		{"garbage certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "parsing certificate"},
		{"not a CA", string(leafPEM), "is not a CA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CABundle([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CABundle(%s) = %v, want an error containing %q", tc.name, err, tc.want)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Options)
		want   string // "" = valid
	}{
		{"valid", func(*Options) {}, ""},
		{"no package", func(o *Options) { o.Package = "" }, "package is required"},
		{"package . needs a binary name", func(o *Options) { o.Package = "." }, `binary name "."`},
		{"package . with a binary name", func(o *Options) { o.Package, o.Binary = ".", "app" }, ""},
		{"no created", func(o *Options) { o.Created = time.Time{} }, "created time is required"},
		{"created before 1970", func(o *Options) { o.Created = time.Unix(-1, 0) }, "before 1970"},
		{"windows", func(o *Options) { o.Platforms = []v1.Platform{{OS: "windows", Architecture: "amd64"}} }, "only linux"},
		{"duplicate platform", func(o *Options) { o.Platforms = []v1.Platform{DefaultPlatforms[0], DefaultPlatforms[0]} },
			"given twice"},
		{"arm64 variant",
			func(o *Options) { o.Platforms = []v1.Platform{{OS: "linux", Architecture: "arm64", Variant: "v9"}} }, "variant"},
		{"relative file", func(o *Options) { o.Files = []File{{Path: "etc/x"}} }, "not absolute"},
		{"unclean file", func(o *Options) { o.Files = []File{{Path: "/etc/../x"}} }, "not absolute and clean"},
		{"file over the bundle", func(o *Options) { o.Files = []File{{Path: CABundlePath}} }, "written by the build"},
		{"file over a directory", func(o *Options) { o.Files = []File{{Path: "/etc/ssl"}} }, "is a directory"},
		{"file mode with type bits", func(o *Options) { o.Files = []File{{Path: "/x", Mode: os.ModeDir | 0o755}} },
			"not a permission mode"},
		{"bad env", func(o *Options) { o.Env = []string{"NOEQUALS"} }, "not KEY=value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions()
			tc.change(&opts)
			err := opts.validate()
			if tc.want == "" {
				if err != nil {
					t.Errorf("validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestParsePlatform(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"linux/amd64", "linux/amd64", ""},
		{"linux/arm/v7", "linux/arm/v7", ""},
		{"linux", "", "want os/arch"},
		{"linux//amd64", "", "want os/arch"},
		{"darwin/arm64", "", "only linux"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			p, err := ParsePlatform(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParsePlatform(%q) = %v, %v; want error %q", tc.in, p, err, tc.err)
				}
				return
			}
			if err != nil || p.String() != tc.want {
				t.Fatalf("ParsePlatform(%q) = %v, %v; want %s", tc.in, p, err, tc.want)
			}
		})
	}
}

func TestWriteLayout(t *testing.T) {
	res := assemble(t, testOptions())
	dir := filepath.Join(t.TempDir(), "image")
	for range 2 { // the second write replaces the first
		if err := WriteLayout(dir, res.Index, "v1.2.3"); err != nil {
			t.Fatal(err)
		}
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Digest != res.Digest || m.Manifests[0].MediaType != types.OCIImageIndex ||
		m.Manifests[0].Annotations[AnnotationRefName] != "v1.2.3" {
		t.Fatalf("index.json manifests %+v, want the index %s named v1.2.3", m.Manifests, res.Digest)
	}
	idx, err := top.ImageIndex(res.Digest)
	if err != nil {
		t.Fatal(err)
	}
	for _, pi := range res.Images {
		img, err := idx.Image(pi.Digest)
		if err != nil {
			t.Fatalf("image %s of %s not in the layout: %v", pi.Digest, pi.Platform, err)
		}
		if got := string(fileOf(t, img, "usr/local/bin/app")); got != "binary for "+pi.Platform.String() {
			t.Errorf("%s binary from the layout: %q", pi.Platform, got)
		}
	}

	notLayout := t.TempDir()
	if err := os.WriteFile(filepath.Join(notLayout, "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteLayout(notLayout, res.Index, ""); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("WriteLayout into a non-layout directory = %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(notLayout, "keep")); err != nil {
		t.Errorf("the non-layout directory was touched: %v", err)
	}
}

func TestPush(t *testing.T) {
	res := assemble(t, testOptions())
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		name, ref, err string
		opts           PushOptions
	}{
		{"tag, default keychain", host + "/team/app:v1", "", PushOptions{}},
		{"tag, anonymous", host + "/team/app:v2", "", PushOptions{Auth: authn.Anonymous, Timeout: time.Minute}},
		{"right digest", host + "/team/app@" + res.Digest.String(), "", PushOptions{Keychain: authn.DefaultKeychain}},
		{"wrong digest", host + "/team/app@sha256:" + strings.Repeat("0", 64), "names another digest", PushOptions{}},
		{"bad reference", "UPPER/case:tag", "parsing push reference", PushOptions{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Push(t.Context(), tc.ref, res.Index, tc.opts)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Push = %v, want error %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.DigestStr() != res.Digest.String() {
				t.Errorf("Push returned %s, want digest %s", got, res.Digest)
			}
			ref, err := name.ParseReference(tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			desc, err := remote.Head(ref, remote.WithContext(t.Context()))
			if err != nil {
				t.Fatal(err)
			}
			if desc.Digest != res.Digest || desc.MediaType != types.OCIImageIndex {
				t.Errorf("registry serves %s (%s), want %s (%s)", desc.Digest, desc.MediaType, res.Digest, types.OCIImageIndex)
			}
		})
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Push(ctx, host+"/team/app:v3", res.Index, PushOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Push with a canceled context = %v, want context.Canceled", err)
	}
}

func TestStaticELF(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a program for two architectures")
	}
	hello := buildHello(t)
	dynamic, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Fatalf("a dynamically linked executable is needed for the negative case: %v", err)
	}
	tests := []struct {
		name string
		data []byte
		arch string
		err  string
	}{
		{"static amd64", hello["amd64"], "amd64", ""},
		{"static arm64", hello["arm64"], "arm64", ""},
		{"amd64 binary as arm64", hello["amd64"], "arm64", "want EM_AARCH64"},
		{"arm64 binary as amd64", hello["arm64"], "amd64", "want EM_X86_64"},
		{"dynamic /bin/sh", dynamic, runtime.GOARCH, "dynamically linked"},
		{"not ELF", []byte("#!/bin/sh\n"), "amd64", "not an ELF file"},
		{"unknown arch", hello["amd64"], "mips99", "unknown ELF machine"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := StaticELF(tc.data, tc.arch)
			if tc.err == "" {
				if err != nil {
					t.Errorf("StaticELF: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("StaticELF = %v, want an error containing %q", err, tc.err)
			}
		})
	}
}

// buildHello builds testdata/hello into an image for both default platforms and returns the
// binary of each architecture, extracted from the image. It checks the host's one runs.
func buildHello(t *testing.T) map[string][]byte {
	t.Helper()
	opts := Options{
		Package: ".", Dir: "testdata/hello", Binary: "hello", Created: testCreated,
		LDFlags: "-X main.message=built-by-ociimage", Args: []string{"a", "b"},
	}
	res, err := Build(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	bins := map[string][]byte{}
	for _, pi := range res.Images {
		bins[pi.Platform.Architecture] = fileOf(t, pi.Image, "usr/local/bin/hello")
	}
	host, ok := bins[runtime.GOARCH]
	if !ok || runtime.GOOS != "linux" {
		t.Fatalf("running the image's binary needs a linux/amd64 or linux/arm64 host, this is %s/%s", runtime.GOOS,
			runtime.GOARCH)
	}
	path := filepath.Join(t.TempDir(), "hello")
	if err := os.WriteFile(path, host, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), path, "x").CombinedOutput()
	if err != nil || string(out) != "built-by-ociimage 1\n" {
		t.Fatalf("running the image's %s binary: %v, output %q", runtime.GOARCH, err, out)
	}
	return bins
}

func TestBuildRejectsBadOptions(t *testing.T) {
	_, err := Build(t.Context(), Options{Package: "./x"})
	if err == nil || !strings.Contains(err.Error(), "created time is required") {
		t.Errorf("Build without Created = %v, want a validation error", err)
	}
	_, err = Build(t.Context(), Options{Package: "./does-not-exist", Created: testCreated,
		Platforms: DefaultPlatforms[:1]})
	if err == nil || !strings.Contains(err.Error(), "go build ./does-not-exist for linux/amd64") {
		t.Errorf("Build of a missing package = %v, want the go build error", err)
	}
}

// testCA returns a self-signed CA's PEM and a leaf certificate it signed, in PEM.
func testCA(t *testing.T, cn string) (caPEM, leafPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		BasicConstraintsValid: true,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
}

func parsePEMCerts(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := bytes.TrimSpace(data); len(rest) > 0; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			t.Fatalf("bundle has trailing non-PEM data: %.40q", rest)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("bundle certificate: %v", err)
		}
		certs = append(certs, c)
	}
	return certs
}
