package harness

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tracebloc/image-refresh/internal/ociimage"
)

// PluginName is the name of the Helm 4 post-renderer plugin (postrender/plugin/plugin.yaml).
const PluginName = "image-refresh"

// Binaries are our own commands, built from the checkout for one run.
type Binaries struct {
	Refresher  string
	Postrender string
	// PluginDir is the Helm 4 plugin directory (plugin.yaml + postrender), laid out as
	// `make plugin` lays out bin/plugin/image-refresh.
	PluginDir string
}

// ModuleRoot is the root of the checkout the harness runs from (the directory of go.mod).
func ModuleRoot(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("locating go.mod: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the image-refresh module")
	}
	return filepath.Dir(gomod), nil
}

// BuildBinaries builds cmd/refresher and cmd/postrender into dir with `go build` and lays
// out the Helm 4 plugin beside them.
func BuildBinaries(ctx context.Context, dir string) (*Binaries, error) {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return nil, err
	}
	b := &Binaries{
		Refresher:  filepath.Join(dir, "refresher"),
		Postrender: filepath.Join(dir, "postrender"),
		PluginDir:  filepath.Join(dir, "plugins", PluginName),
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(
		ctx,
		"go",
		"build",
		"-o",
		dir+string(filepath.Separator),
		"./cmd/refresher",
		"./cmd/postrender",
	)
	killGroupOnCancel(cmd) // the compiler and linker go build started stop with it
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/refresher ./cmd/postrender: %w\n%s", err, out.String())
	}
	if err := os.MkdirAll(b.PluginDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating plugin dir: %w", err)
	}
	if err := copyFile(
		filepath.Join(root, "postrender", "plugin", "plugin.yaml"), filepath.Join(b.PluginDir, "plugin.yaml"), 0o644,
	); err != nil {
		return nil, err
	}
	if err := copyFile(b.Postrender, filepath.Join(b.PluginDir, "postrender"), 0o755); err != nil {
		return nil, err
	}
	return b, nil
}

func copyFile(from, to string, mode os.FileMode) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("copying %s: %w", from, err)
	}
	if err := os.WriteFile(to, data, mode); err != nil {
		return fmt.Errorf("copying to %s: %w", to, err)
	}
	return nil
}

// RefresherImageRepo and RefresherImageTag are where the e2e world pushes the refresher image
// it builds, in its registry.
const (
	RefresherImageRepo = "tracebloc/image-refresh"
	RefresherImageTag  = "e2e"
)

// BuildRefresherImage builds the refresher's multi-platform OCI image from the checkout with
// internal/ociimage, as `make image` does (linux/amd64 and linux/arm64, the default CA bundle).
func BuildRefresherImage(ctx context.Context) (*ociimage.Result, error) {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	res, err := ociimage.Build(ctx, ociimage.Options{
		Package: "./cmd/refresher",
		Dir:     root,
		// Any fixed time: the e2e image need not match a commit.
		Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Metadata: ociimage.Metadata{
			Title:   "image-refresh",
			Version: "e2e",
			Source:  "https://github.com/tracebloc/image-refresh",
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, fmt.Errorf("building the refresher image: %w", err)
	}
	return res, nil
}
