package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	ociIndex = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",` +
		`"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + hex64 + `","size":500}]}`
	ociImage = `{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json",` +
		`"digest":"sha256:` + hex64 + `","size":100},"layers":[]}`
	dockerImage = `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",` +
		`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:` + hex64 + `",` +
		`"size":100},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip",` +
		`"digest":"sha256:` + hex64 + `","size":7}]}`
	dockerList = `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",` +
		`"manifests":[]}`
	hex64        = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	loginPage    = "<html><body>Please log in to the guest network</body></html>"
	schema1Image = `{"schemaVersion":1,"name":"tracebloc/ingestor","tag":"prod","fsLayers":[],"history":[],` +
		`"signatures":[]}`
)

func TestCheckManifest(t *testing.T) {
	for _, tc := range []struct {
		name, contentType, body string
		want                    types.MediaType // "" = not a manifest
	}{
		{"OCI index", string(types.OCIImageIndex), ociIndex, types.OCIImageIndex},
		{"OCI image without the optional mediaType", string(types.OCIManifestSchema1), ociImage, types.OCIManifestSchema1},
		{"Docker image", string(types.DockerManifestSchema2), dockerImage, types.DockerManifestSchema2},
		{"Docker list", string(types.DockerManifestList), dockerList, types.DockerManifestList},
		{"media type parameters", string(types.OCIImageIndex) + "; charset=utf-8", ociIndex, types.OCIImageIndex},
		{"captive portal", "text/html; charset=utf-8", loginPage, ""},
		{"no content type", "", ociIndex, ""},
		{"schema 1 signed", string(types.DockerManifestSchema1Signed), schema1Image, ""},
		{"schema 1", string(types.DockerManifestSchema1), schema1Image, ""},
		{"HTML under a manifest type", string(types.OCIImageIndex), loginPage, ""},
		{
			"schemaVersion 1 under a manifest type",
			string(types.OCIImageIndex),
			strings.Replace(ociIndex, `"schemaVersion":2`, `"schemaVersion":1`, 1),
			"",
		},
		{"no schemaVersion", string(types.OCIImageIndex), strings.Replace(ociIndex, `"schemaVersion":2,`, ``, 1), ""},
		{"header and body disagree", string(types.OCIManifestSchema1), ociIndex, ""},
		{"Docker without its mediaType field", string(types.DockerManifestList), `{"schemaVersion":2,"manifests":[]}`, ""},
		{"index without manifests", string(types.OCIImageIndex), `{"schemaVersion":2}`, ""},
		{"index with layers", string(types.OCIImageIndex), `{"schemaVersion":2,"manifests":[],"layers":[]}`, ""},
		{"image without config", string(types.OCIManifestSchema1), `{"schemaVersion":2,"layers":[]}`, ""},
		{"image without layers", string(types.OCIManifestSchema1), strings.Replace(ociImage, `,"layers":[]`, ``, 1), ""},
		{
			"descriptor digest not a digest",
			string(types.OCIImageIndex),
			strings.Replace(ociIndex, "sha256:"+hex64, "sha256:nothex", 1),
			"",
		},
		{"descriptor without size", string(types.OCIImageIndex), strings.Replace(ociIndex, `,"size":500`, ``, 1), ""},
		{"JSON null", string(types.OCIImageIndex), `null`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := checkManifest(tc.contentType, []byte(tc.body))
			var notManifest *NotManifestError
			switch {
			case tc.want != "" && (err != nil || got != tc.want):
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			case tc.want == "" && !errors.As(err, &notManifest):
				t.Errorf("got %q, %v; want a *NotManifestError", got, err)
			case tc.want == "" &&
				(Reason(err) != ReasonNotAManifest || !strings.Contains(err.Error(), strconv.Quote(tc.contentType))):
				t.Errorf("error %q: want reason %s naming the content type %q", err, ReasonNotAManifest, tc.contentType)
			}
		})
	}
}

// serveManifest answers a GET of a manifest of the ingestor with contentType and body (and
// header "Docker-Content-Digest" when digest is set); the HEAD carries no digest, so the lookup
// falls back to that GET.
func serveManifest(
	contentType, digest string,
	body func(w io.Writer),
) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/manifests/") {
			return false
		}
		w.Header().Set("Content-Type", contentType)
		if digest != "" {
			w.Header().Set("Docker-Content-Digest", digest)
		}
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			body(w)
		}
		return true
	}
}

func text(s string) func(io.Writer) { return func(w io.Writer) { _, _ = io.WriteString(w, s) } }

// A GET answer yields a digest only when it is a manifest, and the digest is always the body's.
func TestResolveOnlyAManifestIsADigest(t *testing.T) {
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return "sha256:" + hex.EncodeToString(h[:]) }
	for _, tc := range []struct {
		name, contentType, headerDigest, body string
		wantDigest, wantReason                string
	}{
		{name: "captive portal login page", contentType: "text/html", body: loginPage, wantReason: ReasonNotAManifest},
		{
			name:         "schema 1 signed with a header digest",
			contentType:  string(types.DockerManifestSchema1Signed),
			headerDigest: "sha256:" + hex64,
			body:         schema1Image,
			wantReason:   ReasonNotAManifest,
		},
		{name: "index whose header digest lies", contentType: string(types.OCIImageIndex), headerDigest: "sha256:" + hex64,
			body: ociIndex, wantDigest: sum(ociIndex)},
		{
			name:        "Docker image",
			contentType: string(types.DockerManifestSchema2),
			body:        dockerImage,
			wantDigest:  sum(dockerImage),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t)
			push(t, srv, "ghcr.io/tracebloc/ingestor:prod", true)
			srv.SetHeadDigest("ghcr.io/tracebloc/ingestor", "")
			srv.SetAnswer("ghcr.io/tracebloc/ingestor", func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method == http.MethodHead {
					return false // the registry's HEAD, without its digest
				}
				return serveManifest(tc.contentType, tc.headerDigest, text(tc.body))(w, r)
			})
			res := newResolver(t, srv, Options{}).Resolve(context.Background(), []string{"ghcr.io/tracebloc/ingestor:prod"})[0]
			if tc.wantReason != "" {
				if res.Err == nil || Reason(res.Err) != tc.wantReason ||
					!strings.Contains(res.Err.Error(), strconv.Quote(tc.contentType)) {
					t.Fatalf("result %+v, want reason %s naming %q", res, tc.wantReason, tc.contentType)
				}
				return
			}
			if res.Err != nil || res.Digest != tc.wantDigest || !res.ViaGet {
				t.Fatalf("result %+v, want %s via GET", res, tc.wantDigest)
			}
		})
	}
}

// zeros writes n zero bytes, counting what the client took before it hung up.
func zeros(n int64, written *atomic.Int64) func(io.Writer) {
	return func(w io.Writer) {
		chunk := make([]byte, 32<<10)
		for left := n; left > 0; left -= int64(len(chunk)) {
			m, err := w.Write(chunk[:min(left, int64(len(chunk)))])
			written.Add(int64(m))
			if err != nil {
				return
			}
		}
	}
}

// An oversized answer fails its own image (reason too-large) without being read whole; the
// other images of the run are resolved.
func TestResolveBoundsTheAnswers(t *testing.T) {
	const huge = 80 << 20
	for _, tc := range []struct {
		name   string
		answer func(written *atomic.Int64) func(w http.ResponseWriter, r *http.Request) bool
		reason string
	}{
		{
			name:   "80 MiB manifest, length declared",
			reason: ReasonTooLarge,
			answer: func(written *atomic.Int64) func(http.ResponseWriter, *http.Request) bool {
				return func(w http.ResponseWriter, r *http.Request) bool {
					w.Header().Set("Content-Length", strconv.Itoa(huge))
					return serveManifest(string(types.OCIImageIndex), "", zeros(huge, written))(w, r)
				}
			},
		},
		{
			name:   "80 MiB manifest, chunked",
			reason: ReasonTooLarge,
			answer: func(written *atomic.Int64) func(http.ResponseWriter, *http.Request) bool {
				return serveManifest(string(types.OCIImageIndex), "", zeros(huge, written))
			},
		},
		{name: "80 MiB error body", answer: func(written *atomic.Int64) func(http.ResponseWriter, *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				if !strings.Contains(r.URL.Path, "/manifests/") {
					return false
				}
				w.WriteHeader(http.StatusNotFound)
				if r.Method == http.MethodGet {
					zeros(huge, written)(w)
				}
				return true
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t)
			push(t, srv, "ghcr.io/tracebloc/ingestor:prod", true)
			other := push(t, srv, "ghcr.io/tracebloc/other:prod", true)
			srv.SetHeadDigest("ghcr.io/tracebloc/ingestor", "")
			var written atomic.Int64
			answer := tc.answer(&written)
			srv.SetAnswer("ghcr.io/tracebloc/ingestor", func(w http.ResponseWriter, r *http.Request) bool {
				return r.Method == http.MethodGet && answer(w, r)
			})
			res := newResolver(t, srv, Options{}).Resolve(
				context.Background(),
				[]string{"ghcr.io/tracebloc/ingestor:prod", "ghcr.io/tracebloc/other:prod"},
			)
			if res[0].Err == nil || Reason(res[0].Err) != tc.reason {
				t.Errorf("oversized answer: %+v, want a failure with reason %q", res[0], tc.reason)
			}
			if res[1].Err != nil || res[1].Digest != other {
				t.Errorf("the other image: %+v, want %s", res[1], other)
			}
			if n := written.Load(); n > 3*MaxManifestBytes {
				t.Errorf("the client took %d bytes of the answer, want it to stop near %d", n, MaxManifestBytes)
			}
		})
	}
}

// The platform gate reads a config blob only when its declared size is small, and only as
// many bytes as declared.
func TestCheckPlatformsBoundsTheConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int64 // the config size the manifest declares
		serve  int64 // bytes served for the config blob
		reason string
	}{
		{name: "declared 80 MiB", size: 80 << 20, serve: 80 << 20, reason: ReasonTooLarge},
		{name: "declared small, served 80 MiB", size: 100, serve: 80 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t)
			push(t, srv, "ghcr.io/tracebloc/ingestor:prod", false)
			manifest := strings.Replace(ociImage, `"size":100`, fmt.Sprintf(`"size":%d`, tc.size), 1)
			manifestDigest := sha256.Sum256([]byte(manifest))
			digest := "sha256:" + hex.EncodeToString(manifestDigest[:])
			var written, blobRequests atomic.Int64
			srv.SetAnswer("ghcr.io/tracebloc/ingestor", func(w http.ResponseWriter, r *http.Request) bool {
				switch {
				case strings.Contains(r.URL.Path, "/manifests/"):
					return serveManifest(string(types.OCIManifestSchema1), "", text(manifest))(w, r)
				case strings.Contains(r.URL.Path, "/blobs/"):
					blobRequests.Add(1)
					w.WriteHeader(http.StatusOK)
					zeros(tc.serve, &written)(w)
					return true
				}
				return false
			})
			err := newResolver(t, srv, Options{}).CheckPlatforms(
				context.Background(),
				"ghcr.io/tracebloc/ingestor:prod",
				digest,
				[]string{"linux/amd64"},
			)
			if err == nil || (tc.reason != "" && Reason(err) != tc.reason) {
				t.Fatalf("error %v, want a failure (reason %q)", err, tc.reason)
			}
			if tc.reason == ReasonTooLarge && blobRequests.Load() != 0 {
				t.Errorf("%d config blob requests, want none for a declared size over %d", blobRequests.Load(), MaxConfigBytes)
			}
			if n := written.Load(); n > 3*MaxManifestBytes {
				t.Errorf("the client took %d bytes of the config blob", n)
			}
		})
	}
}

// A GET by the digest the HEAD gave must answer that digest's bytes: a registry whose GET
// disagrees with its HEAD fails the image.
func TestCheckPlatformsRefusesAManifestOfAnotherDigest(t *testing.T) {
	srv := newServer(t)
	digest := push(t, srv, "ghcr.io/tracebloc/ingestor:prod", true)
	srv.SetAnswer("ghcr.io/tracebloc/ingestor", func(w http.ResponseWriter, r *http.Request) bool {
		return serveManifest(string(types.OCIImageIndex), digest, text(ociIndex))(w, r)
	})
	err := newResolver(t, srv, Options{}).CheckPlatforms(
		context.Background(),
		"ghcr.io/tracebloc/ingestor:prod",
		digest,
		[]string{"linux/amd64"},
	)
	if err == nil || !strings.Contains(err.Error(), "does not match") && !strings.Contains(err.Error(), "has digest") {
		t.Fatalf("error %v, want the manifest of another digest refused", err)
	}
}
