// Command postrender is image-refresh's Helm post-renderer: it reads a rendered release on
// stdin and writes it to stdout with the image-refresh CronJob and its RBAC appended (or
// unchanged when the release carries no refresh config or every image is pinned).
//
//	helm install REL CHART --post-renderer ./bin/postrender [--post-renderer-args --config=FILE]
//	helm install REL CHART --post-renderer image-refresh [--post-renderer-args --config=FILE]   # Helm 4 plugin
//
// The command and its exit codes (cmd.ExitCodes) are in package cmd.
package main

import (
	"os"

	"github.com/tracebloc/image-refresh/cmd/postrender/cmd"
	"github.com/tracebloc/image-refresh/internal/cli"
)

func main() { os.Exit(cli.Main(cmd.New())) }
