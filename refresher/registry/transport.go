package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode"
)

// maxRecordedBody bounds what is kept of a recorded response body (version checks, tokens,
// refusals: all small).
const maxRecordedBody = 64 << 10

// runTransport sits beneath go-containerregistry's client for one run and holds the run to its
// request budget, whatever the client would repeat:
//   - a registry's version check (GET /v2/) is sent once and its response replayed, because
//     the client checks once per repository and the challenge does not change within a run;
//   - a token is asked once per registry, identity, token endpoint and scope, and its answer
//     replayed: after a 401 the client asks again for the same scope, and a lookup of another
//     tag in a refused repository would too (see tokenKey: another registry or identity never
//     gets the answer);
//   - a registry request answered 401 is not sent again: the repeat the client sends with its
//     new token gets the recorded 401 (by registry, identity, method and URL);
//   - credentials never go over plain HTTP, except to a loopback host or for a registry listed
//     insecure (see InsecureCredentialsError);
//   - once a host answered 429 or 5xx, no further request is sent to it (see SkippedError);
//   - HEAD manifest responses are reported to the lookup that sent them (see headObservation).
type runTransport struct {
	inner http.RoundTripper

	mu sync.Mutex
	// exchanges are the version checks and token requests, by key (see once).
	exchanges map[string]*exchange
	// refusals are the registry requests answered 401, by registry, identity, method and URL.
	refusals map[string]*exchange
	// realms are the token endpoints (scheme://host/path) named by bearer challenges.
	realms map[string]bool
	// failedHosts maps a host to the 429 or 5xx status it answered.
	failedHosts map[string]int
	// insecure are the registries (lower-case host[:port]) whose credentials may travel over
	// plain HTTP.
	insecure map[string]bool
	// anonymousTokens are the fingerprints of bearer tokens granted to anonymous token
	// requests: the only bearer tokens that may travel over plain HTTP to any registry.
	anonymousTokens map[string]bool
}

// exchange is one request's recorded response, shared once done is closed.
type exchange struct {
	done   chan struct{}
	resp   *http.Response // body already read into body
	body   []byte
	failed bool // the request failed without a response; not shared
}

// SkippedError is the failure of a request not sent because its host answered 429 (rate
// limited) or 5xx earlier in the run: more requests would only deepen the limit or the outage.
type SkippedError struct {
	Host   string
	Status int
}

func (e *SkippedError) Error() string {
	return fmt.Sprintf("skipped: %s answered %d earlier in this run", e.Host, e.Status)
}

// newRunTransport wraps inner for one run; insecure lists the registries (host[:port]) whose
// credentials may travel over plain HTTP (config spec.insecureRegistries).
func newRunTransport(inner http.RoundTripper, insecure ...string) *runTransport {
	t := &runTransport{
		inner:           inner,
		exchanges:       map[string]*exchange{},
		refusals:        map[string]*exchange{},
		realms:          map[string]bool{},
		failedHosts:     map[string]int{},
		insecure:        map[string]bool{},
		anonymousTokens: map[string]bool{},
	}
	for _, r := range insecure {
		t.insecure[strings.ToLower(r)] = true
	}
	return t
}

func (t *runTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && req.URL.Path == "/v2/" && req.Header.Get("Authorization") == "" {
		return t.once(req, "version check "+req.URL.Scheme+"://"+req.URL.Host)
	}
	registry := registryOf(req.Context())
	if t.isTokenRequest(req) {
		key, identity, req, err := tokenKey(req)
		if err != nil {
			return nil, err
		}
		if identity != anonymous {
			if err := t.plainHTTP(req, registry); err != nil {
				return nil, err
			}
		}
		var resp *http.Response
		if registry == "" {
			// Whose challenge this answers is unknown: its answer is nobody else's.
			resp, err = t.send(req)
		} else {
			resp, err = t.once(req, key)
		}
		if err != nil {
			return nil, err
		}
		resp, token := withheldToken(resp)
		if token != "" && identity == anonymous {
			t.mu.Lock()
			t.anonymousTokens[fingerprint("token", token)] = true
			t.mu.Unlock()
		}
		return resp, nil
	}

	identity := anonymous
	if h := req.Header.Get("Authorization"); h != "" {
		identity = fingerprint("authorization", h)
		if !t.isAnonymousBearer(h) {
			if err := t.plainHTTP(req, registry); err != nil {
				return nil, err
			}
		}
	}
	key := fmt.Sprintf("%s %s registry=%s identity=%s", req.Method, req.URL.String(), registry, identity)
	var refused *exchange
	if registry != "" {
		t.mu.Lock()
		refused = t.refusals[key]
		t.mu.Unlock()
	}
	var resp *http.Response
	if refused != nil {
		resp = refused.replay(req)
	} else {
		var err error
		if resp, err = t.send(req); err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusUnauthorized && registry != "" {
			refused = &exchange{}
			if resp, err = refused.record(req, resp); err != nil {
				return nil, err
			}
			t.mu.Lock()
			t.refusals[key] = refused
			t.mu.Unlock()
		}
	}
	// Every HEAD of a lookup is its manifest HEAD or a redirect of it (to a CDN, another
	// path): the last one recorded is the final answer, whatever its path.
	if req.Method == http.MethodHead {
		if obs, ok := req.Context().Value(headObservationKey{}).(*headObservation); ok {
			obs.record(resp)
		}
	}
	return resp, nil
}

// send sends req unless its host failed earlier in the run. A 429 or 5xx marks the host
// failed; a challenge names a token endpoint.
func (t *runTransport) send(req *http.Request) (*http.Response, error) {
	if err := t.skip(req.URL.Host); err != nil {
		return nil, err
	}
	resp, err := t.inner.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, failed := t.failedHosts[req.URL.Host]; !failed &&
		(resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= http.StatusInternalServerError) {
		t.failedHosts[req.URL.Host] = resp.StatusCode
	}
	if realm := bearerRealm(resp.Header); realm != "" {
		t.realms[realm] = true
	}
	return resp, nil
}

// skip returns a SkippedError if host (host[:port]) answered 429 or 5xx earlier in the run.
func (t *runTransport) skip(host string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if status, failed := t.failedHosts[host]; failed {
		return &SkippedError{Host: host, Status: status}
	}
	return nil
}

// once sends the first request under key and replays its response to later ones. A request
// that fails without a response is not shared: the next caller sends its own.
func (t *runTransport) once(req *http.Request, key string) (*http.Response, error) {
	for {
		t.mu.Lock()
		x, ok := t.exchanges[key]
		if !ok {
			x = &exchange{done: make(chan struct{})}
			t.exchanges[key] = x
		}
		t.mu.Unlock()

		if !ok {
			resp, err := t.send(req)
			if err == nil {
				resp, err = x.record(req, resp)
			}
			if err != nil {
				x.failed = true
				t.mu.Lock()
				delete(t.exchanges, key)
				t.mu.Unlock()
			}
			close(x.done)
			return resp, err
		}
		select {
		case <-x.done:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
		if !x.failed {
			return x.replay(req), nil
		}
	}
}

// record keeps resp (closing its body) and returns a replay of it.
func (x *exchange) record(req *http.Request, resp *http.Response) (*http.Response, error) {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRecordedBody))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", req.URL.Redacted(), err)
	}
	x.resp, x.body = resp, body
	return x.replay(req), nil
}

func (x *exchange) replay(req *http.Request) *http.Response {
	return &http.Response{
		Status:        x.resp.Status,
		StatusCode:    x.resp.StatusCode,
		Proto:         x.resp.Proto,
		ProtoMajor:    x.resp.ProtoMajor,
		ProtoMinor:    x.resp.ProtoMinor,
		Header:        x.resp.Header.Clone(),
		Body:          io.NopCloser(bytes.NewReader(x.body)),
		ContentLength: int64(len(x.body)),
		Request:       req,
	}
}

// maxTokenReason bounds the reason kept from a refused token request.
const maxTokenReason = 120

// withheldToken returns resp and the token it grants, unless it is a token response that
// grants no token — a refusal, or a 200 without "token" or "access_token" — whose body
// go-containerregistry would copy into its error, and so into the refresher's logs: such a
// body may hold a refresh_token or other secrets. Its replacement keeps the status and a short
// reason (the registry's error code and message, or the OAuth error), nothing else.
func withheldToken(resp *http.Response) (*http.Response, string) {
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		body = nil
	}
	var granted struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode == http.StatusOK && json.Unmarshal(body, &granted) == nil &&
		(granted.Token != "" || granted.AccessToken != "") {
		resp.Body = io.NopCloser(bytes.NewReader(body))
		// go-containerregistry uses access_token when token is empty.
		if granted.Token != "" {
			return resp, granted.Token
		}
		return resp, granted.AccessToken
	}
	reason := tokenRefusalReason(body)
	if resp.StatusCode == http.StatusOK {
		reason = "the token endpoint answered 200 without a token"
	}
	msg := fmt.Sprintf("token request answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	if reason != "" {
		msg += ": " + reason
	}
	msg += fmt.Sprintf(" (%d-byte body withheld)", len(body))
	if resp.StatusCode == http.StatusOK {
		// go-containerregistry prints a 200's body after "no token in bearer response".
		body, _ = json.Marshal(map[string]string{"details": msg})
	} else {
		// ... and a refusal's registry error as CODE: message.
		body, _ = json.Marshal(map[string]any{"errors": []map[string]string{{"code": "TOKEN_REFUSED", "message": msg}}})
	}
	resp.Header = resp.Header.Clone()
	resp.Header.Set("Content-Type", "application/json")
	resp.Header.Del("Content-Length")
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	return resp, ""
}

// tokenRefusalReason is the registry's error code and message (distribution's error
// envelope) or the OAuth error of a refused token request, printable and bounded; "" if the
// body carries neither.
func tokenRefusalReason(body []byte) string {
	var refusal struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if json.Unmarshal(body, &refusal) != nil {
		return ""
	}
	var reason string
	switch {
	case len(refusal.Errors) > 0:
		reason = strings.TrimSpace(refusal.Errors[0].Code + " " + refusal.Errors[0].Message)
	case refusal.Error != "":
		reason = strings.TrimSpace(refusal.Error + " " + refusal.ErrorDescription)
	}
	reason = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, reason)
	if len(reason) > maxTokenReason {
		reason = strings.ToValidUTF8(reason[:maxTokenReason], "") + "…"
	}
	return reason
}

// realmPattern finds the realm parameter of a WWW-Authenticate challenge.
var realmPattern = regexp.MustCompile(`(?i)\brealm="([^"]+)"`)

// bearerRealm returns the token endpoint (scheme://host/path) a bearer challenge names, or ""
// (also for a realm that is no absolute http(s) URL: no token request can go there).
func bearerRealm(h http.Header) string {
	for _, challenge := range h.Values("WWW-Authenticate") {
		scheme, params, _ := strings.Cut(strings.TrimSpace(challenge), " ")
		if !strings.EqualFold(scheme, "bearer") {
			continue
		}
		if m := realmPattern.FindStringSubmatch(params); m != nil {
			// Keyed as net/http sends the token request: an empty port (host:) is dropped. A
			// realm without a host name names no endpoint.
			if u, err := url.Parse(m[1]); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Hostname() != "" {
				return u.Scheme + "://" + strings.TrimSuffix(u.Host, ":") + u.Path
			}
		}
	}
	return ""
}

// isTokenRequest reports whether req asks a token endpoint named by an earlier challenge.
func (t *runTransport) isTokenRequest(req *http.Request) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.realms[req.URL.Scheme+"://"+req.URL.Host+req.URL.Path]
}

// tokenKey names a token request by the registry whose challenge it answers (from the
// context), the identity it asks as, endpoint, method, service and scopes, whether they travel
// in the query (GET) or in a form body (POST, the OAuth flow): a token bought with one
// registry's credentials is never handed to another registry, nor a refusal of one identity
// to another. It returns the identity (see credentialIdentity) and the request to send: a
// POST's body, once read, is given to a copy.
func tokenKey(req *http.Request) (key, identity string, sent *http.Request, err error) {
	params := req.URL.Query()
	if req.Body != nil && req.Body != http.NoBody {
		body, err := io.ReadAll(io.LimitReader(req.Body, maxRecordedBody))
		req.Body.Close()
		if err != nil {
			return "", "", nil, fmt.Errorf("reading the token request to %s: %w", req.URL.Redacted(), err)
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return "", "", nil, fmt.Errorf("token request to %s: form body: %w", req.URL.Redacted(), err)
		}
		for k, v := range form {
			params[k] = append(params[k], v...)
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	var scopes []string
	for _, s := range params["scope"] {
		scopes = append(scopes, strings.Fields(s)...)
	}
	slices.Sort(scopes)
	identity = credentialIdentity(req.Header.Get("Authorization"), params)
	key = fmt.Sprintf(
		"token registry=%s identity=%s %s %s://%s%s service=%s scope=%s",
		registryOf(req.Context()),
		identity,
		req.Method,
		req.URL.Scheme,
		req.URL.Host,
		req.URL.Path,
		params.Get("service"),
		strings.Join(slices.Compact(scopes), " "),
	)
	return key, identity, req, nil
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
