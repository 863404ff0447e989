// Command refresher is one tick of the image-refresh CronJob: it polls each floating image
// tag's digest and restarts or re-points the target Deployments whose digest moved.
//
//	refresher --config FILE [--kubeconfig FILE] [--namespace NS] [--dry-run] [--timeout D]
//	refresher status --config FILE [--kubeconfig FILE] [--namespace NS] [--timeout D] [-o table|json]
//
// Logs are JSON on stderr; a dry run prints its plan on stdout. The commands and their exit
// codes (cmd.ExitCodes) are in package cmd.
package main

import (
	"os"

	"github.com/tracebloc/image-refresh/cmd/refresher/cmd"
	"github.com/tracebloc/image-refresh/internal/cli"
)

func main() { os.Exit(cli.Main(cmd.New())) }
