package cmd

import "github.com/tracebloc/image-refresh/internal/cli"

// The codes the commands exit with, named for chartcheck; ExitCodes says what each means.
const (
	// exitChecksFailed is only ever errChecksFailed's: the report says which check failed.
	exitChecksFailed = cli.ExitFailed
	// exitError is every other failure's, a render error's too.
	exitError = cli.ExitUsage
)

// ExitCodes is chartcheck's table of exit codes, the one statement of them: --help, docs/cli and
// docs/chartcheck.md render it. CI reads the codes: never renumber one.
var ExitCodes = cli.ExitCodes{
	{Code: cli.ExitOK, Name: "passed", Meaning: "Every check passed (a warning is a pass); plan: the plan was written."},
	{Code: exitChecksFailed, Name: "failed", Meaning: "A check failed (the report says which), nothing was checked, " +
		"or the post-renderer refused the release (an invalid --config too)."},
	{Code: exitError, Name: "error", Meaning: "A usage error, unreadable input (--config included), or a render " +
		"error: a chart that does not render, a suite scenario that fails to render without expectError " +
		"(the report is still written)."},
}
