// Package registry resolves floating tags to the digests the kubelet would pull, spending as
// few registry requests as possible: one HEAD per distinct reference, one bearer token per
// repository, one API version check (GET /v2/) per registry, no retries (not even after a 401),
// no request at all to a host that answered 429 or 5xx earlier in the run, and a GET of the
// manifest only when a successful HEAD did not carry Docker-Content-Digest (on Docker Hub a GET
// counts as a pull).
package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/tracebloc/image-refresh/internal/config"
)

const (
	// DefaultConcurrency bounds the lookups in flight. A lookup costs two round trips (token,
	// HEAD), so 200 images against a registry 50 ms away take two waves: ≈ 0.3 s, where 64
	// would take four (≈ 0.47 s, at the edge of the 0.5 s budget).
	DefaultConcurrency = 100
	// DefaultTimeout bounds one lookup: the version check, token, HEAD and GET fallback.
	DefaultTimeout = 20 * time.Second
)

// Options configure a Resolver. The zero value is ready for production use.
type Options struct {
	// Transport carries the requests; default a clone of go-containerregistry's
	// remote.DefaultTransport (proxy from the environment, HTTP/2) sized for Concurrency.
	Transport http.RoundTripper
	// Keychain finds credentials per registry; default authn.DefaultKeychain, which reads
	// $DOCKER_CONFIG/config.json (anonymous when there is none).
	Keychain authn.Keychain
	// Concurrency bounds the lookups in flight; default DefaultConcurrency.
	Concurrency int
	// Timeout bounds each lookup; default DefaultTimeout.
	Timeout time.Duration
	// UserAgent is prepended to go-containerregistry's User-Agent.
	UserAgent string
	// InsecureRegistries (host[:port]) may get their credentials over plain HTTP
	// (spec.insecureRegistries); loopback hosts always may.
	InsecureRegistries []string
}

// Result is the outcome of one reference's lookup.
type Result struct {
	// Digest is the manifest (or index) digest the tag points at, "sha256:<64 hex>".
	Digest string
	// ViaGet reports that the HEAD lacked Docker-Content-Digest and the manifest was fetched.
	ViaGet bool
	Err    error
}

// Resolver looks up digests for one run: it remembers version checks and tokens, so create a
// new one per run (tokens expire).
type Resolver struct {
	run         *runTransport
	puller      *remote.Puller
	concurrency int
	timeout     time.Duration
	keychain    authn.Keychain
}

// NewResolver prepares a Resolver.
func NewResolver(opts Options) (*Resolver, error) {
	if opts.Concurrency < 0 || opts.Timeout < 0 {
		return nil, fmt.Errorf(
			"registry options: concurrency %d and timeout %s must not be negative",
			opts.Concurrency,
			opts.Timeout,
		)
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	if opts.Transport == nil {
		t := remote.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = opts.Concurrency
		t.MaxResponseHeaderBytes = maxHeaderBytes
		opts.Transport = t
	}
	run := newRunTransport(boundedTransport{opts.Transport}, opts.InsecureRegistries...)
	ropts := []remote.Option{
		remote.WithTransport(run),
		remote.WithAuthFromKeychain(opts.Keychain),
		// go-containerregistry retries 408/429/5xx and temporary network errors three times by
		// default; a 429 retried is a rate limit made worse, so every request is sent once.
		remote.WithRetryStatusCodes(),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
	}
	if opts.UserAgent != "" {
		ropts = append(ropts, remote.WithUserAgent(opts.UserAgent))
	}
	puller, err := remote.NewPuller(ropts...)
	if err != nil {
		return nil, fmt.Errorf("configuring registry client: %w", err)
	}
	return &Resolver{
		run:         run,
		puller:      puller,
		concurrency: opts.Concurrency,
		timeout:     opts.Timeout,
		keychain:    opts.Keychain,
	}, nil
}

// Resolve looks up every reference ("repository:tag") and returns the results in the same
// order. References naming the same tag (docker.io/busybox:1 and index.docker.io/library/busybox:1)
// share one lookup; at most Concurrency lookups run at once.
func (r *Resolver) Resolve(ctx context.Context, refs []string) []Result {
	results := make([]Result, len(refs))
	r.ResolveEach(ctx, refs, func(i int, res Result) { results[i] = res })
	return results
}

// ResolveEach is Resolve reporting each result as soon as it is known: done is called once per
// reference, from one goroutine at a time, before ResolveEach returns.
func (r *Resolver) ResolveEach(ctx context.Context, refs []string, done func(index int, res Result)) {
	type lookup struct {
		tag     name.Tag
		indexes []int
	}
	var mu sync.Mutex
	report := func(indexes []int, res Result) {
		mu.Lock()
		defer mu.Unlock()
		for _, i := range indexes {
			done(i, res)
		}
	}
	var lookups []*lookup
	byName := map[string]*lookup{}
	for i, ref := range refs {
		tag, err := name.NewTag(ref)
		if err != nil {
			report([]int{i}, Result{Err: fmt.Errorf("parsing reference %q: %w", ref, err)})
			continue
		}
		l, ok := byName[tag.Name()]
		if !ok {
			l = &lookup{tag: tag}
			byName[tag.Name()] = l
			lookups = append(lookups, l)
		}
		l.indexes = append(l.indexes, i)
	}

	sem := make(chan struct{}, r.concurrency)
	var wg sync.WaitGroup
	for _, l := range lookups {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			report(l.indexes, Result{Err: fmt.Errorf("resolving %s: %w", l.tag, ctx.Err())})
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			report(l.indexes, r.resolve(ctx, l.tag))
		})
	}
	wg.Wait()
}

// Serves checks that repository serves digest: a HEAD of repository@digest answered with that
// digest. A digest read from a cluster annotation is only applied once the registry serves it
// in the image's own repository.
func (r *Resolver) Serves(ctx context.Context, repository, digest string) error {
	ref, err := name.NewDigest(repository+"@"+digest, name.WeakValidation)
	if err != nil {
		return fmt.Errorf("%s@%s: %w", repository, digest, err)
	}
	if err := r.run.skip(ref.RegistryStr()); err != nil {
		return fmt.Errorf("checking %s: %w", ref, err)
	}
	ctx, cancel := context.WithTimeout(forRegistry(ctx, ref.RegistryStr()), r.timeout)
	defer cancel()
	desc, err := r.puller.Head(ctx, ref)
	if err != nil {
		return fmt.Errorf("checking %s: %w", ref, err)
	}
	if got := desc.Digest.String(); got != digest {
		return fmt.Errorf("checking %s: the registry answered digest %s", ref, got)
	}
	return nil
}

func (r *Resolver) resolve(ctx context.Context, tag name.Tag) Result {
	// A registry that failed earlier gets no version check or token request either.
	if err := r.run.skip(tag.RegistryStr()); err != nil {
		return Result{Err: fmt.Errorf("resolving %s: %w", tag, err)}
	}
	ctx, cancel := context.WithTimeout(forRegistry(ctx, tag.RegistryStr()), r.timeout)
	defer cancel()
	var head headObservation
	ctx = withHeadObservation(ctx, &head)

	var res Result
	desc, err := r.puller.Head(ctx, tag)
	headOK, headDigest := head.succeeded()
	switch {
	case err == nil:
		res.Digest = desc.Digest.String()
	case headOK && headDigest != "":
		// go-containerregistry refused the answer for a missing Content-Type or
		// Content-Length; the digest is all a lookup needs (and is checked below).
		res.Digest = headDigest
	case headOK:
		got, getErr := r.getManifest(ctx, tag)
		if getErr != nil {
			return Result{Err: fmt.Errorf("resolving %s: HEAD had no Docker-Content-Digest, GET failed: %w", tag, getErr)}
		}
		res.Digest, res.ViaGet = got.digest, true
	default:
		var skipped *SkippedError
		if errors.As(err, &skipped) {
			return Result{Err: fmt.Errorf("resolving %s: %w", tag, skipped)}
		}
		var terr *transport.Error
		if errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden) {
			return Result{
				Err: fmt.Errorf(
					"resolving %s: unauthorized: the registry refused access to %s; check that the repository exists and that the "+
						"registry credentials (DOCKER_CONFIG) may read it: %w",
					tag,
					tag.Context(),
					err,
				),
			}
		}
		return Result{Err: fmt.Errorf("resolving %s: %w", tag, err)}
	}
	if !config.ValidDigest(res.Digest) {
		return Result{Err: fmt.Errorf("resolving %s: registry answered digest %q, want sha256:<64 hex>", tag, res.Digest)}
	}
	return res
}
