package registry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"
)

// What the refresher reads from a registry is bounded, so that one broken or hostile registry
// fails its own images and never the tick (the CronJob's memory limit is 64Mi):
const (
	// MaxManifestBytes bounds every successful answer body: manifests, indexes, the referrers
	// index, signature objects and blobs. 4 MiB is what the OCI distribution spec asks a
	// registry to accept for a manifest at least, and what distribution's registry accepts at
	// most; real ones are far smaller (an index of 20 platforms with their attestations is
	// ≈ 20 KiB, an image of 127 layers ≈ 30 KiB).
	MaxManifestBytes = 4 << 20
	// MaxConfigBytes bounds an image config blob, read by the platform gate only for its
	// os/architecture/variant: checked against the size the manifest declares before the GET.
	// Real configs are a few KiB (tens with a long history); 1 MiB leaves room for big labels.
	MaxConfigBytes = 1 << 20
	// maxErrorBody bounds what is read of an error answer (4xx, 5xx): a registry error
	// envelope is a few hundred bytes; the rest is cut, not failed.
	maxErrorBody = 64 << 10
	// maxHeaderBytes bounds a response's headers (net/http's default is 10 MiB).
	maxHeaderBytes = 64 << 10
)

// TooLargeError is an answer larger than the refresher reads.
type TooLargeError struct {
	// What was read (a URL path, "config blob").
	What string
	// Size is the size the answer or its descriptor declared, -1 if unknown (read past Limit).
	Size, Limit int64
}

func (e *TooLargeError) Error() string {
	if e.Size < 0 {
		return fmt.Sprintf("%s: %s is larger than %d bytes, the most the refresher reads", ReasonTooLarge, e.What, e.Limit)
	}
	return fmt.Sprintf("%s: %s is %d bytes, more than the %d the refresher reads", ReasonTooLarge, e.What, e.Size, e.Limit)
}

// boundedTransport bounds every response body below the run's transport: a successful GET's to
// MaxManifestBytes (declared larger: failed before any byte is read; a stream of unknown length:
// read here and failed past it), an error answer's to maxErrorBody (cut silently: only its
// envelope matters).
type boundedTransport struct {
	inner http.RoundTripper
}

func (b boundedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.inner.RoundTrip(req)
	if err != nil || resp.Body == nil || req.Method == http.MethodHead {
		return resp, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		resp.Body = readCloser{io.LimitReader(resp.Body, maxErrorBody), resp.Body}
		return resp, nil
	}
	what := truncateText(req.URL.Path, 200)
	if resp.ContentLength > MaxManifestBytes {
		resp.Body.Close()
		resp.Body = errReader{&TooLargeError{What: what, Size: resp.ContentLength, Limit: MaxManifestBytes}}
		return resp, nil
	}
	if resp.ContentLength >= 0 {
		return resp, nil // net/http reads no more than the declared length
	}
	// A stream of unknown length is read here, in chunks, so an oversized one costs the limit
	// once (not the reader's doubling buffer) and is failed before the client sees a byte.
	body, err := readChunks(resp.Body, MaxManifestBytes)
	resp.Body.Close()
	switch {
	case errors.Is(err, errTooLarge):
		resp.Body = errReader{&TooLargeError{What: what, Size: -1, Limit: MaxManifestBytes}}
	case err != nil:
		resp.Body = errReader{err}
	default:
		resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	return resp, nil
}

var errTooLarge = errors.New("too large")

// readChunks reads r to its end in 256 KiB chunks, failing with errTooLarge past limit bytes.
func readChunks(r io.Reader, limit int64) ([]byte, error) {
	var chunks [][]byte
	var total int64
	for {
		chunk := make([]byte, 256<<10)
		n, err := io.ReadFull(r, chunk)
		total += int64(n)
		if total > limit {
			return nil, errTooLarge
		}
		chunks = append(chunks, chunk[:n])
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return bytes.Join(chunks, nil), nil
		}
		if err != nil {
			return nil, err
		}
	}
}

type readCloser struct {
	io.Reader
	io.Closer
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
func (e errReader) Close() error             { return nil }

// truncateText cuts s to at most n bytes without splitting a rune (text from a registry, before
// it is quoted into an error).
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
