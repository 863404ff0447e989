// Command postrender is image-refresh's Helm post-renderer: it reads a rendered release on
// stdin and writes it to stdout with the image-refresh CronJob and its RBAC appended (or
// unchanged when the release carries no refresh config or every image is pinned).
//
//	helm install REL CHART --post-renderer ./bin/postrender [--post-renderer-args --config=FILE]
//	helm install REL CHART --post-renderer image-refresh [--post-renderer-args --config=FILE]   # Helm 4 plugin
//
// Exit codes: 0 output written; 1 refused (the release or the refresh config cannot work);
// 2 usage (bad flags or arguments, unreadable --config); 3 stdin or stdout failed. The
// command is in package cmd.
package main

import (
	"os"

	"github.com/tracebloc/image-refresh/cmd/postrender/cmd"
	"github.com/tracebloc/image-refresh/internal/cli"
)

func main() { os.Exit(cli.Main(cmd.New())) }
