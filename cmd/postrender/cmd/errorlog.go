package cmd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// errorLogRotateSize is the size at which the error log is renamed to <log>.1, replacing the
// previous one, before the next entry.
const errorLogRotateSize = 1 << 20

const defaultErrorFileDoc = "${XDG_STATE_HOME:-~/.local/state}/image-refresh/postrender-errors.log"

// errorFilePath is $IMAGE_REFRESH_ERROR_FILE, or the default under the XDG state directory;
// "" when disabled or when there is no home directory.
func errorFilePath() string {
	if p, ok := os.LookupEnv(errorFileEnv); ok {
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
