// Package cmd holds the postrender command. New is the binary; ExitCodes are its exit codes.
package cmd

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracebloc/image-refresh/internal/cli"
	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/version"
	"github.com/tracebloc/image-refresh/postrender"
)

// errorFileEnv names the log every failure is also appended to, because Helm 4 drops a
// post-renderer plugin's stderr. Set it empty to write none.
const errorFileEnv = "IMAGE_REFRESH_ERROR_FILE"

// New is the postrender binary: a failure is written to stderr and appended to the error log;
// it exits with ExitCodes.
func New() cli.Program {
	root := newCommand()
	ExitCodes.Document(root)
	return cli.Program{Root: root, Report: report, DefaultCode: exitRefused}
}

// report writes the failure on stderr and appends it to the error file. A success leaves the
// error log alone: another run may have failed at the same time.
func report(stderr io.Writer, args []string, err error) {
	message := "image-refresh postrender: " + err.Error() + "\n"
	if errorFile := errorFilePath(); errorFile != "" {
		if werr := appendErrorLog(errorFile, errorLogEntry(time.Now(), args, message)); werr != nil {
			message += fmt.Sprintf("(could not append this message to %s: %v)\n", errorFile, werr)
		} else {
			message += fmt.Sprintf("(this message is also appended to %s)\n", errorFile)
		}
	}
	fmt.Fprint(stderr, message)
}

func newCommand() *cobra.Command {
	var flags postrender.Args
	cmd := &cobra.Command{
		Use:   "postrender [--config FILE] [--allow-external-keys]",
		Short: "Helm post-renderer that injects the image-refresh CronJob into a release",
		Long: `postrender reads a rendered Helm release on stdin and writes it to stdout, every document
unchanged, with image-refresh's ServiceAccount, Role, RoleBinding and CronJob appended.

The refresh config comes from a ConfigMap in the release labelled ` + config.ConfigLabel + `: "true"
(key ` + config.ConfigMapKey + `; it may be an item of a List, as may the target Deployments), or from
--config, in which case the ConfigMap is appended too. A config ConfigMap that is a Helm hook is
refused: the CronJob could not count on it (Helm 3 does not pass hooks to post-renderers at all).
Without a config the release passes through unchanged; with every image pinned nothing is added.

With spec.verification the CronJob mounts the keys ConfigMap read-only at ` + config.KeysMountPath + `. The
release must render that ConfigMap (its *` + config.KeyFileSuffix + ` entries are checked to be public keys the
refresher can verify with), or --allow-external-keys declares that it exists in the cluster already.

A config that cannot work against the release is refused with the image, the document and
the fix. Helm 4 hides a plugin's stderr, so every failure also appends an entry
to the log $` + errorFileEnv + ` (default ` + defaultErrorFileDoc + `;
empty: no log): a header line with the time, process id, working directory, HELM_NAMESPACE and
arguments, then the message. Concurrent runs each keep their entry; a success writes nothing, so
the last entry is the latest failure, not necessarily the latest run. At 1 MiB the log moves to
<log>.1.`,
		Example: `  helm template rel ./chart | postrender --config refresh.yaml
  helm install rel ./chart --post-renderer ./bin/postrender --post-renderer-args --config=refresh.yaml
  helm install rel ./chart --post-renderer image-refresh --post-renderer-args --allow-external-keys`,
		Version: version.Version,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return cli.Usagef("unexpected argument %q: the release is read from stdin", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := flags.Options()
			if err != nil {
				if _, refused := errors.AsType[*postrender.RefusalError](err); refused {
					return err // exit 1, as a refused release
				}
				return cli.Usage(err)
			}
			opts.Warn = func(message string) {
				fmt.Fprintln(cmd.ErrOrStderr(), "postrender: warning:", message)
			}
			in, err := io.ReadAll(cmd.InOrStdin())
			if err != nil {
				return cli.Exit(exitIO, fmt.Errorf("reading the release from stdin: %w", err))
			}
			out, err := postrender.Render(in, opts)
			if err != nil {
				return err
			}
			if _, err := cmd.OutOrStdout().Write(out); err != nil {
				return cli.Exit(exitIO, fmt.Errorf("writing the release to stdout: %w", err))
			}
			return nil
		},
	}
	flags.AddFlags(cmd.Flags())
	cmd.CompletionOptions.DisableDefaultCmd = true
	cmd.AddCommand(newObjectsCommand())
	return cmd
}
