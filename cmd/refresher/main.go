// Command refresher is one tick of the image-refresh CronJob: it polls each floating image
// tag's digest and restarts or re-points the target Deployments whose digest moved.
//
//	refresher --config FILE [--kubeconfig FILE] [--namespace NS] [--dry-run] [--timeout D]
//	refresher status --config FILE [--kubeconfig FILE] [--namespace NS] [--timeout D] [-o table|json]
//
// Exit codes: 0 every floating image was checked; 1 an image or target failed (after the
// others were processed) or the cluster was unreachable; 2 bad flags or a bad config; 3
// (status) an image is behind its registry digest or holds a quarantined one. Logs are JSON on
// stderr; a dry run prints its plan on stdout. The commands are in package cmd.
package main

import (
	"os"

	"github.com/tracebloc/image-refresh/cmd/refresher/cmd"
	"github.com/tracebloc/image-refresh/internal/cli"
)

func main() { os.Exit(cli.Main(cmd.New())) }
