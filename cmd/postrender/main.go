// Command postrender is image-refresh's Helm post-renderer: it reads a rendered release on
// stdin and writes it to stdout with the image-refresh CronJob and its RBAC appended (or
// unchanged when the release carries no refresh config or every image is pinned).
//
//	helm install REL CHART --post-renderer ./bin/postrender [--post-renderer-args --config=FILE]
//	helm install REL CHART --post-renderer image-refresh [--post-renderer-args --config=FILE]   # Helm 4 plugin
//
// Exit codes: 0 output written; 1 refused (the release or the refresh config cannot work);
// 2 usage (bad flags or arguments, unreadable --config); 3 stdin or stdout failed.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracebloc/image-refresh/internal/version"
	"github.com/tracebloc/image-refresh/postrender"
	"github.com/tracebloc/image-refresh/refresher/config"
)

// Exit codes.
const (
	exitOK      = 0
	exitRefused = 1
	exitUsage   = 2
	exitIO      = 3
)

// ErrorFileEnv names the log every failure is also appended to, because Helm 4 drops a
// post-renderer plugin's stderr. Set it empty to write none.
const ErrorFileEnv = "IMAGE_REFRESH_ERROR_FILE"

// errorLogRotateSize is the size at which the error log is renamed to <log>.1, replacing the
// previous one, before the next entry.
const errorLogRotateSize = 1 << 20

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command and reports the failure on stderr and in the error file.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := newCommand(stdin, stdout)
	// Never nil: cobra would fall back to os.Args, which under go test holds the test flags.
	cmd.SetArgs(append([]string{}, args...))
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		// A success leaves the error log alone: another run may have failed at the same time.
		return exitOK
	}
	message := "image-refresh postrender: " + err.Error() + "\n"
	if errorFile := errorFilePath(); errorFile != "" {
		if werr := appendErrorLog(errorFile, errorLogEntry(time.Now(), args, message)); werr != nil {
			message += fmt.Sprintf("(could not append this message to %s: %v)\n", errorFile, werr)
		} else {
			message += fmt.Sprintf("(this message is also appended to %s)\n", errorFile)
		}
	}
	fmt.Fprint(stderr, message)
	return exitCode(err)
}

func exitCode(err error) int {
	var usage *usageError
	var ioErr *ioError
	switch {
	case errors.As(err, &usage):
		return exitUsage
	case errors.As(err, &ioErr):
		return exitIO
	default:
		return exitRefused
	}
}

type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

type ioError struct{ err error }

func (e *ioError) Error() string { return e.err.Error() }
func (e *ioError) Unwrap() error { return e.err }

func newCommand(stdin io.Reader, stdout io.Writer) *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "postrender [--config FILE]",
		Short: "Helm post-renderer that injects the image-refresh CronJob into a release",
		Long: `postrender reads a rendered Helm release on stdin and writes it to stdout, every document
unchanged, with image-refresh's ServiceAccount, Role, RoleBinding and CronJob appended.

The refresh config comes from a ConfigMap in the release labelled ` + config.ConfigLabel + `: "true"
(key ` + config.ConfigMapKey + `; it may be an item of a List, as may the target Deployments), or from
--config, in which case the ConfigMap is appended too. A config ConfigMap that is a Helm hook is
refused: the CronJob could not count on it (Helm 3 does not pass hooks to post-renderers at all).
Without a config the release passes through unchanged; with every image pinned nothing is added.

A config that cannot work against the release is refused (exit 1) with the image, the
document and the fix. Helm 4 hides a plugin's stderr, so every failure also appends an entry
to the log $` + ErrorFileEnv + ` (default ` + defaultErrorFileDoc + `;
empty: no log): a header line with the time, process id, working directory, HELM_NAMESPACE and
arguments, then the message. Concurrent runs each keep their entry; a success writes nothing, so
the last entry is the latest failure, not necessarily the latest run. At 1 MiB the log moves to
<log>.1.`,
		Example: `  helm template rel ./chart | postrender --config refresh.yaml
  helm install rel ./chart --post-renderer ./bin/postrender --post-renderer-args --config=refresh.yaml`,
		Version: version.Version,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &usageError{fmt.Errorf("unexpected argument %q: the release is read from stdin", args[0])}
			}
			return nil
		},
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var opts postrender.Options
			if configFile != "" {
				data, err := os.ReadFile(configFile)
				if err != nil {
					return &usageError{fmt.Errorf("reading --config: %w", err)}
				}
				cfg, err := config.Parse(data)
				if err != nil {
					return &postrender.RefusalError{Reason: postrender.ReasonInvalidConfig, Message: fmt.Sprintf("--config %s: %v", configFile, err)}
				}
				opts.Config = cfg
			}
			in, err := io.ReadAll(stdin)
			if err != nil {
				return &ioError{fmt.Errorf("reading the release from stdin: %w", err)}
			}
			out, err := postrender.Render(in, opts)
			if err != nil {
				return err
			}
			if _, err := stdout.Write(out); err != nil {
				return &ioError{fmt.Errorf("writing the release to stdout: %w", err)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "refresh config file (image-refresh.io/v1alpha1 RefreshConfig); also appended as a ConfigMap")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	return cmd
}

const defaultErrorFileDoc = "${XDG_STATE_HOME:-~/.local/state}/image-refresh/postrender-errors.log"

// errorFilePath is $IMAGE_REFRESH_ERROR_FILE, or the default under the XDG state directory;
// "" when disabled or when there is no home directory.
func errorFilePath() string {
	if p, ok := os.LookupEnv(ErrorFileEnv); ok {
		return p
	}
	state := os.Getenv("XDG_STATE_HOME")
	if state == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		state = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(state, "image-refresh", "postrender-errors.log")
}

// errorLogHeader opens every entry of the error log.
const errorLogHeader = "==== image-refresh postrender failed at "

// errorLogEntry is one failure as the error log records it: which run failed, then what it said.
func errorLogEntry(now time.Time, args []string, message string) []byte {
	dir, err := os.Getwd()
	if err != nil {
		dir = "(unknown)"
	}
	return fmt.Appendf(nil, "%s%s (pid %d, dir %s, HELM_NAMESPACE=%q, args %q)\n%s\n",
		errorLogHeader, now.UTC().Format(time.RFC3339Nano), os.Getpid(), dir, os.Getenv("HELM_NAMESPACE"), args,
		strings.TrimRight(message, "\n"))
}

// appendErrorLog appends one entry in a single write to the log opened for appending, so
// entries of concurrent runs neither overwrite nor interleave. A log past errorLogRotateSize is
// renamed first; a run that opened it before still writes into the renamed file.
func appendErrorLog(path string, entry []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating directory: %w", err)
	}
	if info, err := os.Stat(path); err == nil && info.Size() >= errorLogRotateSize {
		if err := os.Rename(path, path+".1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotating: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(entry)
	return errors.Join(err, f.Close())
}
