package cmd

import "github.com/tracebloc/image-refresh/internal/cli"

// exitBehind is status's code beside cli's; ExitCodes says what each means.
const exitBehind = 3

// ExitCodes is the refresher's table of exit codes, the one statement of them: --help, docs/cli
// and docs/refresher.md render it. The CronJob's Job and monitoring read the codes: never
// renumber one.
var ExitCodes = cli.ExitCodes{
	{Code: cli.ExitOK, Name: "ok", Meaning: "The tick checked every floating image, whatever it decided " +
		"(waiting included); status: no row is behind, stale or failed."},
	{Code: cli.ExitFailed, Name: "failed", Meaning: "An image or target failed, after the others were processed, " +
		"or the cluster could not be reached; status: a row could not be read or its last tick failed."},
	{Code: cli.ExitUsage, Name: "usage", Meaning: "Bad flags or arguments, an unreadable or invalid config " +
		"or keys directory, an unloadable --kubeconfig."},
	{Code: exitBehind, Name: "behind", Meaning: "status only: a row is behind (the registry is ahead of what runs) " +
		"or quarantined, or the refresher stopped (stale)."},
}
