// Command imagebuild builds the refresher image (`make image`): a reproducible multi-platform
// OCI image of cmd/refresher, without Docker, written as an OCI image layout and optionally
// pushed.
//
//	imagebuild [--out bin/image] [--push REF] [--revision SHA] [--source URL]
//	           [--created UNIX] [--platform linux/amd64]... [--ca-file FILE]...
//
// It prints the index digest, then each platform's manifest digest and compressed layer
// size. Its exit codes are exitCodes.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/tracebloc/image-refresh/internal/cli"
	"github.com/tracebloc/image-refresh/internal/ociimage"
	"github.com/tracebloc/image-refresh/internal/version"
)

const (
	refresherPackage = "./cmd/refresher"
	defaultSource    = "https://github.com/tracebloc/image-refresh"
	title            = "image-refresh"
	description      = "One tick of the image-refresh CronJob: polls floating image tags and refreshes the Deployments " +
		"whose digest moved."
)

func main() { os.Exit(cli.Main(newProgram())) }

// exitCodes is imagebuild's table of exit codes: its --help and docs/release.md render it.
var exitCodes = cli.ExitCodes{
	{Code: cli.ExitOK, Name: "built", Meaning: "The image was built (and pushed)."},
	{Code: cli.ExitFailed, Name: "failed", Meaning: "The build or the push failed."},
	{Code: cli.ExitUsage, Name: "usage", Meaning: "Bad flags."},
}

// newProgram is imagebuild: a failure is logged on stderr; it exits with exitCodes.
func newProgram() cli.Program {
	root := newCommand()
	exitCodes.Document(root)
	return cli.Program{Root: root, Report: func(stderr io.Writer, _ []string, err error) {
		newLogger(stderr).Error("imagebuild failed", "error", err.Error())
	}}
}

func newLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

type flags struct {
	out, push, revision, source, licenses, created, dir string
	platforms, caFiles                                  []string
	pushTimeout                                         time.Duration
}

func newCommand() *cobra.Command {
	var f flags
	cmd := &cobra.Command{
		Use:   "imagebuild",
		Short: "Build the refresher's multi-platform OCI image without Docker",
		Long: `imagebuild compiles cmd/refresher (static, CGO_ENABLED=0) for every platform and builds one
single-layer OCI image per platform — /usr/local/bin/refresher as entrypoint, a CA bundle at
/etc/ssl/certs/ca-certificates.crt, user 65532:65532 — under one OCI image index. The same source,
Go toolchain and flags give the same index digest. The index is written as an OCI image layout
(--out) and, with --push, pushed with the credentials of the Docker config.`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return build(cmd.Context(), f, cmd.OutOrStdout(), newLogger(cmd.ErrOrStderr()))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.out, "out", "bin/image", "OCI image layout directory to write (replaced if it is one); empty: none")
	fl.StringVar(&f.push, "push", "", "push the index to this reference, e.g. ghcr.io/tracebloc/image-refresh:v0.1.0")
	fl.StringVar(&f.revision, "revision", "", "source revision label; default: git rev-parse HEAD")
	fl.StringVar(&f.source, "source", defaultSource, "source repository label")
	fl.StringVar(&f.licenses, "licenses", "", "SPDX license expression label; empty: no label")
	fl.StringVar(&f.created, "created", "",
		"creation time, unix seconds; default: $SOURCE_DATE_EPOCH, else the commit time (git log -1 --format=%ct)")
	fl.StringArrayVar(&f.platforms, "platform", nil,
		"os/arch[/variant] to build, repeatable; default linux/amd64 and linux/arm64")
	fl.StringArrayVar(&f.caFiles, "ca-file", nil,
		"PEM file of extra CA certificates for the bundle (a private registry's), repeatable")
	fl.StringVar(&f.dir, "dir", "", "module root to build in; default: the module of the current directory")
	fl.DurationVar(&f.pushTimeout, "push-timeout", 10*time.Minute, "deadline of the push")
	return cmd
}

func build(ctx context.Context, f flags, stdout io.Writer, logger *slog.Logger) error {
	opts, err := options(ctx, f)
	if err != nil {
		return err
	}
	opts.Logger = logger
	began := time.Now()
	res, err := ociimage.Build(ctx, opts)
	if err != nil {
		return err
	}
	logger.Info("built", "index", res.Digest.String(), "duration", time.Since(began).Round(time.Millisecond).String())
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "index\t%s\n", res.Digest)
	for _, pi := range res.Images {
		fmt.Fprintf(tw, "%s\t%s\t%d bytes\n", pi.Platform, pi.Digest, pi.LayerSize)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing the summary: %w", err)
	}
	if f.out != "" {
		if err := ociimage.WriteLayout(f.out, res.Index, version.Version); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "layout %s\n", f.out)
	}
	if f.push != "" {
		ref, err := ociimage.Push(ctx, f.push, res.Index, ociimage.PushOptions{Timeout: f.pushTimeout})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "pushed %s\n", ref)
	}
	return nil
}

// options turns the flags into build options; a bad flag is a usage error.
func options(ctx context.Context, f flags) (ociimage.Options, error) {
	if f.out == "" && f.push == "" {
		return ociimage.Options{}, cli.Usagef("nothing to do: --out is empty and --push is not set")
	}
	if f.pushTimeout <= 0 {
		return ociimage.Options{}, cli.Usagef("--push-timeout must be positive, got %s", f.pushTimeout)
	}
	var platforms []v1.Platform
	for _, s := range f.platforms {
		p, err := ociimage.ParsePlatform(s)
		if err != nil {
			return ociimage.Options{}, cli.Usagef("--platform: %w", err)
		}
		platforms = append(platforms, p)
	}
	var cas [][]byte
	for _, file := range f.caFiles {
		data, err := os.ReadFile(file)
		if err != nil {
			return ociimage.Options{}, cli.Usagef("--ca-file: %w", err)
		}
		cas = append(cas, data)
	}
	if _, err := ociimage.CABundle(cas...); err != nil {
		return ociimage.Options{}, cli.Usagef("--ca-file: %w", err)
	}
	dir := f.dir
	if dir == "" {
		gomod, err := goOutput(ctx, "", "go", "env", "GOMOD")
		if err != nil {
			return ociimage.Options{}, err
		}
		if gomod == "" || gomod == os.DevNull {
			return ociimage.Options{}, cli.Usagef("not inside a Go module: run from the image-refresh checkout or pass --dir")
		}
		dir = filepath.Dir(gomod)
	}
	created, err := createdTime(ctx, f.created, os.Getenv("SOURCE_DATE_EPOCH"), dir)
	if err != nil {
		return ociimage.Options{}, err
	}
	revision := f.revision
	if revision == "" {
		if revision, err = goOutput(ctx, dir, "git", "rev-parse", "HEAD"); err != nil {
			return ociimage.Options{}, fmt.Errorf("default --revision: %w", err)
		}
	}
	return ociimage.Options{
		Package:   refresherPackage,
		Dir:       dir,
		Platforms: platforms,
		Created:   created,
		ExtraCAs:  cas,
		Metadata: ociimage.Metadata{
			Title: title, Description: description, Version: version.Version, Revision: revision,
			Source: f.source, Licenses: f.licenses,
		},
	}, nil
}

// createdTime is --created, else SOURCE_DATE_EPOCH, else the time of the commit checked out
// in dir, as unix seconds.
func createdTime(ctx context.Context, flag, env, dir string) (time.Time, error) {
	parse := func(what, s string) (time.Time, error) {
		secs, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || secs < 0 {
			return time.Time{}, cli.Usagef("%s %q: want unix seconds", what, s)
		}
		return time.Unix(secs, 0).UTC(), nil
	}
	switch {
	case flag != "":
		return parse("--created", flag)
	case env != "":
		return parse("SOURCE_DATE_EPOCH", env)
	}
	out, err := goOutput(ctx, dir, "git", "log", "-1", "--format=%ct")
	if err != nil {
		return time.Time{}, fmt.Errorf("default --created (pass --created or SOURCE_DATE_EPOCH outside a git checkout): %w",
			err)
	}
	return parse("commit time", out)
}

// goOutput runs a short helper command and returns its trimmed stdout.
func goOutput(ctx context.Context, dir, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
