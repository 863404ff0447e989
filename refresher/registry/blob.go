package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// blobMismatchError is a blob whose bytes are not what its descriptor says.
type blobMismatchError struct {
	desc v1.Descriptor
	size int
}

func (e *blobMismatchError) Error() string {
	return fmt.Sprintf("blob of %d bytes does not match its descriptor (%d bytes, %s)", e.size, e.desc.Size, e.desc.Digest)
}

// readBlob reads the blob d describes from repo: its declared size must be 1 to limit bytes (a
// *TooLargeError otherwise, before any request), and what is read must be exactly that size
// with that sha256 (a *blobMismatchError otherwise). A blob the registry does not have is
// go-containerregistry's error (see notFound).
func (r *Resolver) readBlob(
	ctx context.Context,
	repo name.Repository,
	what string,
	d v1.Descriptor,
	limit int64,
) ([]byte, error) {
	if d.Size <= 0 || d.Size > limit {
		return nil, &TooLargeError{What: what, Size: d.Size, Limit: limit}
	}
	if d.Digest.Algorithm != "sha256" {
		return nil, fmt.Errorf("%s digest %s is not sha256", what, d.Digest)
	}
	layer, err := r.puller.Layer(ctx, repo.Digest(d.Digest.String()))
	if err != nil {
		return nil, err
	}
	rc, err := layer.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, d.Size+1))
	if err != nil {
		// go-containerregistry checks the digest as the body ends
		if strings.Contains(err.Error(), "checksum") {
			return nil, &blobMismatchError{desc: d, size: len(b)}
		}
		return nil, err
	}
	sum := sha256.Sum256(b)
	if int64(len(b)) != d.Size || hex.EncodeToString(sum[:]) != d.Digest.Hex {
		return nil, &blobMismatchError{desc: d, size: len(b)}
	}
	return b, nil
}
