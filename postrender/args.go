package postrender

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/tracebloc/image-refresh/internal/config"
)

// Args are the post-renderer's command-line flags, declared once: the postrender binary's, and
// what chartcheck's --post-renderer-args passes through.
type Args struct {
	// ConfigFile is --config: a RefreshConfig file, also appended to the release as a ConfigMap.
	ConfigFile string
	// AllowExternalKeys is --allow-external-keys (Options.AllowExternalKeys).
	AllowExternalKeys bool
}

// AddFlags declares the post-renderer's flags on fs, bound to a.
func (a *Args) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&a.ConfigFile, "config", "",
		"refresh config file (image-refresh.io/v1alpha1 RefreshConfig); also appended as a ConfigMap")
	fs.BoolVar(&a.AllowExternalKeys, "allow-external-keys", false,
		"spec.verification.keysConfigMap exists in the cluster already: do not refuse a release that does not render it")
}

// ParseArgs parses the post-renderer's arguments, one per element as `helm --post-renderer-args`
// passes them, with the binary's flags. Unknown flags and positional arguments are errors.
func ParseArgs(args []string) (Args, error) {
	var a Args
	fs := pflag.NewFlagSet("postrender", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return Args{}, err
	}
	if fs.NArg() > 0 {
		return Args{}, fmt.Errorf("unexpected argument %q: the release is read from stdin", fs.Arg(0))
	}
	return a, nil
}

// Options reads --config, if given, and returns Render's options. An unreadable file is an
// error wrapping the os error; a config that config.Parse rejects is a *RefusalError
// (ReasonInvalidConfig), as the post-renderer refuses it.
func (a Args) Options() (Options, error) {
	opts := Options{AllowExternalKeys: a.AllowExternalKeys}
	if a.ConfigFile == "" {
		return opts, nil
	}
	data, err := os.ReadFile(a.ConfigFile)
	if err != nil {
		return Options{}, fmt.Errorf("reading --config: %w", err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return Options{}, &RefusalError{Reason: ReasonInvalidConfig, Message: fmt.Sprintf("--config %s: %v", a.ConfigFile,
			err)}
	}
	opts.Config = cfg
	return opts, nil
}
