package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group  = "root:x:0:\nnonroot:x:65532:\n"
)

// Assemble builds the index from compiled binaries, one per platform of opts (in that order).
// It does not run the compiler, so it is cheap: the same binaries and options always give
// the same digest.
func Assemble(bins []Binary, opts Options) (*Result, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	platforms := opts.platforms()
	if len(bins) != len(platforms) {
		return nil, fmt.Errorf("assembling: %d binaries for %d platforms", len(bins), len(platforms))
	}
	bundle, err := CABundle(opts.ExtraCAs...)
	if err != nil {
		return nil, err
	}
	created := opts.Created.UTC().Truncate(time.Second)
	annotations := opts.Metadata.annotations(created)

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	res := &Result{}
	for i, p := range platforms {
		b := bins[i]
		if b.Platform.String() != p.String() {
			return nil, fmt.Errorf("assembling: binary %d is for %s, want %s", i, b.Platform, p)
		}
		if len(b.Data) == 0 {
			return nil, fmt.Errorf("assembling: the %s binary is empty", p)
		}
		img, layerSize, err := platformImage(opts, p, b.Data, bundle, created, annotations)
		if err != nil {
			return nil, fmt.Errorf("assembling the %s image: %w", p, err)
		}
		digest, err := img.Digest()
		if err != nil {
			return nil, fmt.Errorf("digest of the %s image: %w", p, err)
		}
		res.Images = append(res.Images, PlatformImage{Platform: p, Image: img, Digest: digest, LayerSize: layerSize})
		platform := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{MediaType: types.OCIManifestSchema1, Platform: &platform},
		})
	}
	index, ok := mutate.Annotations(idx, annotations).(v1.ImageIndex)
	if !ok {
		return nil, fmt.Errorf("annotating the index: unexpected %T", idx)
	}
	if res.Digest, err = index.Digest(); err != nil {
		return nil, fmt.Errorf("digest of the index: %w", err)
	}
	res.Index = index
	return res, nil
}

func platformImage(opts Options, p v1.Platform, binary, bundle []byte, created time.Time,
	annotations map[string]string) (v1.Image, int64, error) {
	entrypoint := path.Join(BinDir, opts.binary())
	files := []File{
		{Path: entrypoint, Data: binary, Mode: 0o755},
		{Path: CABundlePath, Data: bundle, Mode: 0o644},
		{Path: "/etc/passwd", Data: []byte(passwd), Mode: 0o644},
		{Path: "/etc/group", Data: []byte(group), Mode: 0o644},
	}
	files = append(files, opts.Files...)
	layerBytes, err := layerTarGz(files, dirs(opts), created)
	if err != nil {
		return nil, 0, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, 0, fmt.Errorf("creating the layer: %w", err)
	}

	env := append([]string{"PATH=" + PathEnv, "SSL_CERT_FILE=" + CABundlePath}, opts.Env...)
	cfg := &v1.ConfigFile{
		Architecture: p.Architecture,
		OS:           p.OS,
		Variant:      p.Variant,
		Created:      v1.Time{Time: created},
		Config: v1.Config{
			Entrypoint: []string{entrypoint},
			Cmd:        slices.Clone(opts.Args),
			Env:        env,
			User:       User,
			WorkingDir: WorkingDir,
			Labels:     maps.Clone(annotations),
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	base, err = mutate.ConfigFile(base, cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("setting the config: %w", err)
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "ociimage: go build " + opts.Package,
			Comment:   "static binary, CA bundle",
		},
	})
	if err != nil {
		return nil, 0, fmt.Errorf("appending the layer: %w", err)
	}
	annotated, ok := mutate.Annotations(img, annotations).(v1.Image)
	if !ok {
		return nil, 0, fmt.Errorf("annotating the manifest: unexpected %T", img)
	}
	return annotated, int64(len(layerBytes)), nil
}

// dirs is every directory of the image: the parents of its files, and /tmp.
func dirs(opts Options) map[string]bool {
	all := map[string]bool{"/tmp": true}
	paths := []string{path.Join(BinDir, opts.binary()), CABundlePath, "/etc/passwd"}
	for _, f := range opts.Files {
		paths = append(paths, f.Path)
	}
	for _, p := range paths {
		for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
			all[d] = true
		}
	}
	return all
}

// layerTarGz writes the layer: directories and files sorted by path, owned by 0:0, dated
// created, then gzip at best compression with an empty header (no name, no time).
func layerTarGz(files []File, directories map[string]bool, created time.Time) ([]byte, error) {
	type entry struct {
		hdr  *tar.Header
		data []byte
	}
	var entries []entry
	for _, d := range slices.Sorted(maps.Keys(directories)) {
		mode := int64(0o755)
		if d == "/tmp" {
			mode = 0o1777
		}
		entries = append(entries, entry{hdr: &tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/",
			Mode: mode}})
	}
	for _, f := range files {
		mode := int64(f.Mode.Perm())
		if mode == 0 {
			mode = 0o644
		}
		entries = append(entries, entry{hdr: &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.Path, "/"),
			Mode: mode, Size: int64(len(f.Data))}, data: f.Data})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.hdr.Name, b.hdr.Name) })

	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("creating gzip writer: %w", err)
	}
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		e.hdr.ModTime = created
		e.hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(e.hdr); err != nil {
			return nil, fmt.Errorf("writing tar header %s: %w", e.hdr.Name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("writing %s: %w", e.hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing tar: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("closing gzip: %w", err)
	}
	return buf.Bytes(), nil
}

// annotations are the OCI labels and annotations of m, created included; empty fields are
// left out.
func (m Metadata) annotations(created time.Time) map[string]string {
	a := map[string]string{AnnotationCreated: created.Format(time.RFC3339)}
	for k, v := range map[string]string{
		AnnotationTitle: m.Title, AnnotationDescription: m.Description, AnnotationVersion: m.Version,
		AnnotationRevision: m.Revision, AnnotationSource: m.Source, AnnotationLicenses: m.Licenses,
	} {
		if v != "" {
			a[k] = v
		}
	}
	return a
}
