package signature

import (
	"errors"
	"fmt"
	"strings"
)

// The reasons of a digest the signature gate refused.
const (
	// ReasonMissing: no signature of the digest by any configured key was found.
	ReasonMissing = "signature-missing"
	// ReasonInvalid: signatures exist but none verifies: wrong key, tampered payload or
	// signature, signature bound to another digest or another repository.
	ReasonInvalid = "signature-invalid"
)

// Layout is where a signature was found.
type Layout string

const (
	// LayoutSigTag is cosign 2's default: tag sha256-<hex>.sig, simple-signing payload.
	LayoutSigTag Layout = "sig-tag"
	// LayoutReferrers is a sigstore bundle v0.3 found through GET /v2/<repo>/referrers/<digest>.
	LayoutReferrers Layout = "referrers-api"
	// LayoutReferrersTag is a sigstore bundle found through the OCI fallback index tag
	// sha256-<hex> (where Docker Hub and GHCR keep cosign 3's bundles).
	LayoutReferrersTag Layout = "referrers-tag"
)

// Verdict is a verified signature: where it was found and the key that verified it.
type Verdict struct {
	Layout Layout
	Key    string
}

// Error is a digest the signature gate refused.
type Error struct {
	Reason     string // ReasonMissing or ReasonInvalid
	Digest     string
	Repository string
	Keys       []string // names of the keys tried
	Detail     string
}

func (e *Error) Error() string {
	keys := "none"
	if len(e.Keys) > 0 {
		keys = strings.Join(e.Keys, ", ")
	}
	var msg string
	switch e.Reason {
	case ReasonMissing:
		msg = fmt.Sprintf("%s: no signature of %s in %s by key %s", e.Reason, e.Digest, e.Repository, keys)
	default:
		msg = fmt.Sprintf("%s: no signature of %s in %s verifies by key %s", e.Reason, e.Digest, e.Repository, keys)
	}
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

// Reason is ReasonMissing or ReasonInvalid when err is or wraps an *Error, else "".
func Reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func keyNames(keys []PublicKey) []string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.Name
	}
	return names
}
