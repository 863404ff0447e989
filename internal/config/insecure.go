package config

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// validateInsecureRegistries checks spec.insecureRegistries: each a registry host[:port] as an
// image reference names it (what the refresher compares with), unique.
func (c *RefreshConfig) validateInsecureRegistries() []error {
	var errs []error
	seen := map[string]int{}
	for i, r := range c.Spec.InsecureRegistries {
		at := fmt.Sprintf("spec.insecureRegistries[%d] %q", i, r)
		if err := validRegistryHost(r); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", at, err))
		} else if j, dup := seen[strings.ToLower(r)]; dup {
			errs = append(errs, fmt.Errorf("%s: duplicate of spec.insecureRegistries[%d]", at, j))
		} else {
			seen[strings.ToLower(r)] = i
		}
	}
	return errs
}

// validRegistryHost accepts a registry as it appears in an image reference: host[:port], no
// scheme, path or credentials, in go-containerregistry's canonical form.
func validRegistryHost(r string) error {
	u, err := url.Parse("//" + r)
	if err != nil || r == "" || u.Host != r || u.User != nil || u.Hostname() == "" {
		return fmt.Errorf("must be host[:port], without scheme or path")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port must be 1-65535")
		}
	}
	reg, err := name.NewRegistry(r, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("must be host[:port]: %w", err)
	}
	if reg.RegistryStr() != r {
		return fmt.Errorf("image references name this registry %q", reg.RegistryStr())
	}
	return nil
}
