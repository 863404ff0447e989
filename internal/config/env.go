package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/validate/content"
)

// EnvVar is one variable of spec.job.env, set on the refresher container: a Kubernetes EnvVar
// with a literal value only (the ConfigMap carries it; valueFrom is not supported).
type EnvVar struct {
	Name  string `yaml:"name" json:"name"`
	Value string `yaml:"value" json:"value"`
}

// ProxyEnvNames are the variables spec.job.env may set: the proxy settings Go's
// http.ProxyFromEnvironment reads (the upper-case form wins when both are set), which the
// refresher's registry and Kubernetes clients both honour.
var ProxyEnvNames = []string{"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"}

// proxySchemes are the proxy URL schemes net/http's Transport supports.
var proxySchemes = []string{"http", "https", "socks5", "socks5h"}

// validateEnv checks spec.job.env: proxy variables only, each name once, values Go reads as
// meant; both forms of one variable (HTTP_PROXY, http_proxy) must agree.
func (j Job) validateEnv() []error {
	var errs []error
	seen := map[string]int{}
	for i, e := range j.Env {
		at := fmt.Sprintf("spec.job.env[%d] (%s)", i, e.Name)
		if !slices.Contains(ProxyEnvNames, e.Name) {
			errs = append(errs, fmt.Errorf("%s.name: only %s may be set", at, strings.Join(ProxyEnvNames, ", ")))
			continue
		}
		upper := strings.ToUpper(e.Name)
		if k, dup := seen[e.Name]; dup {
			errs = append(errs, fmt.Errorf("%s.name: duplicate of spec.job.env[%d]", at, k))
			continue
		}
		seen[e.Name] = i
		var err error
		if upper == "NO_PROXY" {
			err = validNoProxy(e.Value)
		} else {
			err = validProxyURL(e.Value)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.value %q: %w", at, e.Value, err))
			continue
		}
		other := strings.ToLower(e.Name)
		if other == e.Name {
			other = upper
		}
		if k, both := seen[other]; both && j.Env[k].Value != e.Value {
			errs = append(errs,
				fmt.Errorf("%s.value %q: differs from spec.job.env[%d] (%s) %q; Go reads only %s when both are set",
					at, e.Value, k, other, j.Env[k].Value, upper))
		}
	}
	return errs
}

// validProxyURL accepts what net/http proxies through: a URL with a supported scheme and a
// host, no path, query or fragment (Go would ignore them).
func validProxyURL(v string) error {
	u, err := url.Parse(v)
	if err != nil {
		return errors.New("must be a URL, e.g. http://proxy.example:3128")
	}
	if !slices.Contains(proxySchemes, u.Scheme) {
		return fmt.Errorf("scheme must be %s (e.g. http://proxy.example:3128)", strings.Join(proxySchemes, ", "))
	}
	if u.Hostname() == "" || u.Opaque != "" {
		return errors.New("must name a host, e.g. http://proxy.example:3128")
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("must not have a path, query or fragment (Go ignores them)")
	}
	if p := u.Port(); p != "" {
		if err := validPort(p); err != nil {
			return err
		}
	}
	return nil
}

// validNoProxy accepts a comma-separated list of the entries Go's httpproxy matches: "*", an
// IP or CIDR, a domain (leading "." or "*." optional) with an optional port. Blank entries are
// skipped, as Go skips them; one it would ignore is refused.
func validNoProxy(v string) error {
	entries := 0
	for entry := range strings.SplitSeq(v, ",") {
		entry = strings.ToLower(strings.TrimSpace(entry))
		if entry != "" {
			entries++
		}
		if entry == "" || entry == "*" {
			continue
		}
		if _, _, err := net.ParseCIDR(entry); err == nil {
			continue
		}
		host := entry
		if h, p, err := net.SplitHostPort(entry); err == nil {
			if err := validPort(p); err != nil {
				return fmt.Errorf("entry %q: %w", entry, err)
			}
			host = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		}
		if net.ParseIP(host) != nil {
			continue
		}
		domain := strings.TrimPrefix(strings.TrimPrefix(host, "*"), ".")
		if msgs := content.IsDNS1123Subdomain(domain); len(msgs) > 0 {
			return fmt.Errorf("entry %q: not a host, domain, IP or CIDR: %s", entry, strings.Join(msgs, "; "))
		}
	}
	if entries == 0 {
		return errors.New("must list at least one host, domain, IP or CIDR")
	}
	return nil
}

func validPort(p string) error {
	if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q must be 1-65535", p)
	}
	return nil
}
