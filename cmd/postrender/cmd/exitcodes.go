package cmd

import "github.com/tracebloc/image-refresh/internal/cli"

// The codes the commands exit with besides cli's; ExitCodes says what each means.
const (
	exitRefused = cli.ExitFailed
	exitIO      = 3
)

// ExitCodes is postrender's table of exit codes, the one statement of them: --help, docs/cli and
// docs/postrender.md render it. Helm and scripts read the codes: never renumber one.
var ExitCodes = cli.ExitCodes{
	{Code: cli.ExitOK, Name: "written", Meaning: "The release was written to stdout (empty input: empty output); " +
		"for objects, the objects (nothing when every image is pinned)."},
	{Code: exitRefused, Name: "refused", Meaning: "The release or the refresh config cannot work (objects: the config); " +
		"the message on stderr, also appended to the error log, names the image, the document and the fix."},
	{Code: cli.ExitUsage, Name: "usage", Meaning: "An unknown flag, an argument, an unreadable --config file " +
		"(objects: also no --config)."},
	{Code: exitIO, Name: "io", Meaning: "Reading stdin or writing stdout failed."},
}
