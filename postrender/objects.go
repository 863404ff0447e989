package postrender

import (
	"errors"
	"fmt"
)

// Objects returns exactly the documents Render appends, with opts.Config as --config, to a release
// that accepts the config: the config ConfigMap, ServiceAccount, Role, RoleBinding, CronJob and
// admission guard, each opened by "---", LF line breaks. Empty when every image is pinned.
// It needs no release and checks none (only the config): a chart that carries these objects
// (charts/image-refresh) is checked when it is rendered, by the post-renderer or chartcheck.
// opts.AllowExternalKeys is not used; opts.Warn receives the config's deprecations.
func Objects(opts Options) ([]byte, error) {
	if opts.Config == nil {
		return nil, errors.New("objects: no refresh config given")
	}
	src, err := findConfig(nil, opts, nil)
	if err != nil {
		return nil, err
	}
	if opts.Warn != nil {
		for _, d := range src.cfg.Deprecations() {
			opts.Warn(fmt.Sprintf("refresh config %q: %s", src.cfg.Metadata.Name, d))
		}
	}
	if !src.cfg.AnyFloating() {
		return []byte{}, nil
	}
	return newInjection(src, nil).render()
}
