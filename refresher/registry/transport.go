package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// maxPingBody bounds what is kept of a version-check response body.
const maxPingBody = 64 << 10

// runTransport sits beneath go-containerregistry's client for one run. It answers repeated
// version checks (GET /v2/) of a registry from the first response, because the client checks
// once per repository and the registry's challenge does not change within a run; and it
// reports HEAD manifest responses to the lookup that sent them (see headObservation).
type runTransport struct {
	inner http.RoundTripper

	mu    sync.Mutex
	pings map[string]*ping // by scheme://host
}

// ping is one registry's version-check response, shared once done is closed.
type ping struct {
	done   chan struct{}
	resp   *http.Response // body already read into body
	body   []byte
	failed bool // the request failed without a response; not shared
}

func newRunTransport(inner http.RoundTripper) *runTransport {
	return &runTransport{inner: inner, pings: map[string]*ping{}}
}

func (t *runTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && req.URL.Path == "/v2/" {
		return t.ping(req)
	}
	resp, err := t.inner.RoundTrip(req)
	if err == nil && req.Method == http.MethodHead && strings.Contains(req.URL.Path, "/manifests/") {
		if obs, ok := req.Context().Value(headObservationKey{}).(*headObservation); ok {
			obs.record(resp)
		}
	}
	return resp, err
}

// ping sends the first version check per registry and replays its response to later ones.
// A check that fails without a response is not shared: the next caller sends its own.
func (t *runTransport) ping(req *http.Request) (*http.Response, error) {
	key := req.URL.Scheme + "://" + req.URL.Host
	for {
		t.mu.Lock()
		p, ok := t.pings[key]
		if !ok {
			p = &ping{done: make(chan struct{})}
			t.pings[key] = p
		}
		t.mu.Unlock()

		if !ok {
			resp, err := t.fetchPing(req, p)
			if err != nil {
				t.mu.Lock()
				delete(t.pings, key)
				t.mu.Unlock()
			}
			close(p.done)
			return resp, err
		}
		select {
		case <-p.done:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
		if !p.failed {
			return p.replay(req), nil
		}
	}
}

func (t *runTransport) fetchPing(req *http.Request, p *ping) (*http.Response, error) {
	resp, err := t.inner.RoundTrip(req)
	if err != nil {
		p.failed = true
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPingBody))
	if err != nil {
		p.failed = true
		return nil, fmt.Errorf("reading %s: %w", req.URL, err)
	}
	p.resp, p.body = resp, body
	return p.replay(req), nil
}

func (p *ping) replay(req *http.Request) *http.Response {
	return &http.Response{
		Status:        p.resp.Status,
		StatusCode:    p.resp.StatusCode,
		Proto:         p.resp.Proto,
		ProtoMajor:    p.resp.ProtoMajor,
		ProtoMinor:    p.resp.ProtoMinor,
		Header:        p.resp.Header.Clone(),
		Body:          io.NopCloser(bytes.NewReader(p.body)),
		ContentLength: int64(len(p.body)),
		Request:       req,
	}
}

// headObservation records what the registry answered to a lookup's HEAD, so the lookup can
// take the digest of a successful HEAD that go-containerregistry rejects (it also demands
// Content-Type and Content-Length, which the digest does not need), and tell "the HEAD
// succeeded but carried no digest" (fall back to GET) from every other failure (never fall
// back: a GET after a 429 or 5xx is one more pull against the limit).
type headObservation struct {
	mu     sync.Mutex
	status int
	digest string // Docker-Content-Digest, "" when absent
}

type headObservationKey struct{}

func withHeadObservation(ctx context.Context, obs *headObservation) context.Context {
	return context.WithValue(ctx, headObservationKey{}, obs)
}

func (o *headObservation) record(resp *http.Response) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.status = resp.StatusCode
	o.digest = resp.Header.Get("Docker-Content-Digest")
}

// succeeded reports whether the HEAD was answered 200, and the digest it carried ("" if none).
func (o *headObservation) succeeded() (ok bool, digest string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.status == http.StatusOK, o.digest
}
