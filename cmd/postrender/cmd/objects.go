package cmd

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tracebloc/image-refresh/internal/cli"
	"github.com/tracebloc/image-refresh/postrender"
)

// newObjectsCommand is `postrender objects`: the documents the post-renderer appends for a config,
// for a chart that carries them itself (charts/image-refresh).
func newObjectsCommand() *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "objects --config FILE",
		Short: "Write the objects the post-renderer appends for a config, for a chart to carry",
		Long: `objects writes to stdout exactly the documents postrender appends to a release given
--config FILE: the config ConfigMap, ServiceAccount, Role, RoleBinding, CronJob and admission
guard, the same bytes. Nothing when every image is pinned.

A chart that upgrades itself without the post-renderer (an in-cluster helm upgrade) loses injected
objects on its next upgrade; a chart you own can carry them instead: commit this output as
image-refresh/objects.yaml and render it with the library chart charts/image-refresh. Regenerate
it whenever the config or the image-refresh version changes. Only the config is checked, not the
chart: check the chart with chartcheck, or render it through postrender, which accepts the objects
as its own and replaces them with the same bytes.`,
		Example: `  postrender objects --config refresh.yaml > mychart/image-refresh/objects.yaml
  postrender objects --config refresh.yaml | diff - mychart/image-refresh/objects.yaml   # in CI`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile == "" {
				return cli.Usagef("--config is required: the RefreshConfig the objects are made for")
			}
			opts, err := postrender.Args{ConfigFile: configFile}.Options()
			if err != nil {
				if _, refused := errors.AsType[*postrender.RefusalError](err); refused {
					return err
				}
				return cli.Usage(err)
			}
			opts.Warn = func(message string) {
				fmt.Fprintln(cmd.ErrOrStderr(), "postrender objects: warning:", message)
			}
			out, err := postrender.Objects(opts)
			if err != nil {
				return err
			}
			if len(out) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "postrender objects: every image is pinned: no objects to carry")
			}
			if _, err := cmd.OutOrStdout().Write(out); err != nil {
				return cli.Exit(exitIO, fmt.Errorf("writing the objects to stdout: %w", err))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "refresh config file (image-refresh.io/v1alpha1 RefreshConfig)")
	return cmd
}
