// Command chartcheck proves in CI that a chart's rendered release keeps the image-refresh
// contract: it renders the chart in-process with the Helm v3 SDK, runs the image-refresh
// post-renderer on it and checks the result.
//
//	chartcheck [run] CHART [-f FILE] [--set K=V] [--release NAME] [-n NS]   one render
//	chartcheck [run] [CHART] --suite FILE                                  every scenario of a suite
//	chartcheck [run] --manifests FILE                                      an already-rendered stream
//	helm template ... | chartcheck --suite FILE    a stream with expectations (scenario manifests: "-")
//	chartcheck plan CHART [-f FILE] [--set K=V] | plan --manifests FILE     the refresher's calls
//
// The commands and their exit codes (cmd.ExitCodes) are in package cmd.
package main

import (
	"os"

	"github.com/tracebloc/image-refresh/cmd/chartcheck/cmd"
	"github.com/tracebloc/image-refresh/internal/cli"
)

func main() { os.Exit(cli.Main(cmd.New())) }
