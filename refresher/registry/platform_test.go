package registry

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tracebloc/image-refresh/refresher/registry/registrytest"
)

var (
	amd64   = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64   = v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	armv6   = v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}
	windows = v1.Platform{OS: "windows", Architecture: "amd64"}
)

// TestCheckPlatforms: the gate reads an index (one GET) or a single-platform image's manifest
// and config (two GETs), after the lookup's one HEAD, with the lookup's token.
func TestCheckPlatforms(t *testing.T) {
	for _, tc := range []struct {
		name     string
		index    bool
		pushed   []v1.Platform
		required []string
		missing  []string // nil: passes
		gets     int      // manifest GETs + blob GETs the check sends
	}{
		{
			name:     "full index",
			index:    true,
			pushed:   []v1.Platform{amd64, arm64},
			required: []string{"linux/amd64", "linux/arm64"},
			gets:     1,
		},
		{
			name:     "index missing arm64",
			index:    true,
			pushed:   []v1.Platform{amd64},
			required: []string{"linux/amd64", "linux/arm64"},
			missing:  []string{"linux/arm64"},
			gets:     1,
		},
		{
			name:     "index of other platforms",
			index:    true,
			pushed:   []v1.Platform{windows},
			required: []string{"linux/amd64", "linux/arm64"},
			missing:  []string{"linux/amd64", "linux/arm64"},
			gets:     1,
		},
		{
			name:     "index, variant required and present",
			index:    true,
			pushed:   []v1.Platform{amd64, arm64},
			required: []string{"linux/arm64/v8"},
			gets:     1,
		},
		{
			name:     "index, variant required, another one present",
			index:    true,
			pushed:   []v1.Platform{armv6},
			required: []string{"linux/arm/v7"},
			missing:  []string{"linux/arm/v7"},
			gets:     1,
		},
		{name: "single image of the only platform", pushed: []v1.Platform{amd64}, required: []string{"linux/amd64"}, gets: 2},
		{
			name:     "single image, variant not required",
			pushed:   []v1.Platform{arm64},
			required: []string{"linux/arm64"},
			gets:     2,
		},
		{
			name:     "single image of another platform",
			pushed:   []v1.Platform{amd64},
			required: []string{"linux/arm64"},
			missing:  []string{"linux/arm64"},
			gets:     2,
		},
		{
			name:     "single image, two platforms required",
			pushed:   []v1.Platform{amd64},
			required: []string{"linux/amd64", "linux/arm64"},
			missing:  []string{"linux/arm64"},
			gets:     2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t)
			ref := "ghcr.io/tracebloc/ingestor:prod"
			var digest string
			var err error
			if tc.index {
				digest, err = srv.PushPlatformIndex(ref, tc.pushed...)
			} else {
				digest, err = srv.PushPlatformImage(ref, tc.pushed[0])
			}
			if err != nil {
				t.Fatal(err)
			}
			r := newResolver(t, srv, Options{})
			res := r.Resolve(context.Background(), []string{ref})[0]
			if res.Err != nil || res.Digest != digest {
				t.Fatalf("Resolve = %+v, want %s", res, digest)
			}
			err = r.CheckPlatforms(context.Background(), ref, res.Digest, tc.required)
			var pe *PlatformError
			switch {
			case tc.missing == nil && err != nil:
				t.Fatalf("CheckPlatforms = %v, want pass", err)
			case tc.missing != nil && !errors.As(err, &pe):
				t.Fatalf("CheckPlatforms = %v, want a PlatformError", err)
			case tc.missing != nil:
				if !slices.Equal(pe.Missing, tc.missing) || pe.Digest != digest {
					t.Errorf("missing %v of %s, want %v of %s", pe.Missing, pe.Digest, tc.missing, digest)
				}
				if !strings.HasPrefix(err.Error(), ReasonPlatformMissing+": ") ||
					!strings.Contains(err.Error(), strings.Join(tc.missing, ", ")) {
					t.Errorf("error %q does not start with the reason and name the missing platforms", err)
				}
				if !IsPlatformMissing(err) {
					t.Error("IsPlatformMissing = false")
				}
			}
			manifestGets := srv.Count(func(q registrytest.Request) bool {
				return q.IsManifest(http.MethodGet) && q.Path == "/v2/tracebloc/ingestor/manifests/"+digest
			})
			blobGets := srv.Count(func(q registrytest.Request) bool {
				return q.Method == http.MethodGet && strings.Contains(q.Path, "/blobs/")
			})
			allGets := srv.Count(func(q registrytest.Request) bool {
				return q.Method == http.MethodGet && !q.IsPing() && !q.IsToken()
			})
			if manifestGets != 1 || manifestGets+blobGets != tc.gets || allGets != tc.gets {
				t.Errorf(
					"%d manifest GETs by digest, %d blob GETs, %d GETs in all; want 1 manifest GET and %d in all",
					manifestGets,
					blobGets,
					allGets,
					tc.gets,
				)
			}
			if n := srv.Count(registrytest.Request.IsToken); n != 1 {
				t.Errorf("%d token requests, want the lookup's one", n)
			}
			if n := srv.Count(func(q registrytest.Request) bool { return q.IsManifest(http.MethodHead) }); n != 1 {
				t.Errorf("%d HEADs, want the lookup's one", n)
			}
		})
	}
}

func TestCheckPlatformsNoGate(t *testing.T) {
	srv := newServer(t)
	r := newResolver(t, srv, Options{})
	if err := r.CheckPlatforms(
		context.Background(),
		"ghcr.io/tracebloc/ingestor:prod",
		"sha256:"+strings.Repeat("a", 64),
		nil,
	); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("%d requests without a gate, want none", n)
	}
}

func TestCheckPlatformsRegistryFailure(t *testing.T) {
	srv := newServer(t)
	ref := "ghcr.io/tracebloc/ingestor:prod"
	digest, err := srv.PushPlatformIndex(ref, amd64, arm64)
	if err != nil {
		t.Fatal(err)
	}
	r := newResolver(t, srv, Options{})
	srv.SetManifestStatus("ghcr.io/tracebloc/ingestor", http.StatusServiceUnavailable)
	err = r.CheckPlatforms(context.Background(), ref, digest, []string{"linux/amd64"})
	if err == nil || IsPlatformMissing(err) || !strings.Contains(err.Error(), "checking the platforms of "+ref) {
		t.Fatalf("CheckPlatforms = %v, want a registry failure naming the reference", err)
	}
	// The host answered 503: a second check is not sent.
	before := len(srv.Requests())
	err = r.CheckPlatforms(context.Background(), ref, digest, []string{"linux/amd64"})
	var skipped *SkippedError
	if !errors.As(err, &skipped) || len(srv.Requests()) != before {
		t.Errorf("second check = %v after %d more requests, want skipped without a request", err, len(srv.Requests())-before)
	}
}
