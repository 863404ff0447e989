// Package signature is the signature gate's verification: trusted public keys (PEM, PKIX) and
// the checks of what the real cosign CLI writes, key-based and offline (no Rekor, Fulcio or
// TUF), over bytes already fetched. Fetching lives in refresher/registry. This file imports
// only the standard library: postrender and chartcheck link the package for key parsing.
package signature

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// MaxKeySize bounds one key file ReadKeysDir reads.
const MaxKeySize = 64 << 10

// minRSABits is the smallest RSA modulus accepted.
const minRSABits = 2048

// PublicKey is one trusted key.
type PublicKey struct {
	// Name is the keys ConfigMap's data key, e.g. release.pub.
	Name string
	// Fingerprint is the hex sha256 of the key's PKIX DER.
	Fingerprint string
	key         crypto.PublicKey
}

// ParsePublicKey parses one PEM "PUBLIC KEY" (PKIX) block: ECDSA P-256 or P-384, Ed25519, or RSA
// of at least 2048 bits. Anything else, or anything but whitespace around the block, is an error
// naming the key.
func ParsePublicKey(name string, pemData []byte) (PublicKey, error) {
	block, rest := pem.Decode(pemData)
	if block == nil {
		return PublicKey{}, fmt.Errorf("key %s: no PEM block", name)
	}
	if block.Type != "PUBLIC KEY" {
		return PublicKey{}, fmt.Errorf("key %s: PEM block %q, want \"PUBLIC KEY\" (PKIX)", name, block.Type)
	}
	if len(block.Headers) > 0 {
		return PublicKey{}, fmt.Errorf("key %s: PEM block has headers", name)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return PublicKey{}, fmt.Errorf("key %s: data after the PEM block (one key per entry)", name)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(pemData), []byte("-----BEGIN PUBLIC KEY-----")) {
		return PublicKey{}, fmt.Errorf("key %s: data before the PEM block", name)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return PublicKey{}, fmt.Errorf("key %s: parsing PKIX public key: %w", name, err)
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return PublicKey{}, fmt.Errorf("key %s: ECDSA curve %s not supported (P-256 or P-384)", name, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return PublicKey{}, fmt.Errorf("key %s: RSA key of %d bits, want at least %d", name, k.N.BitLen(), minRSABits)
		}
	default:
		return PublicKey{}, fmt.Errorf("key %s: key type %T not supported (ECDSA P-256/P-384, Ed25519, RSA)", name, pub)
	}
	sum := sha256.Sum256(block.Bytes)
	return PublicKey{Name: name, Fingerprint: hex.EncodeToString(sum[:]), key: pub}, nil
}

// ParseKeys parses the entries of a keys ConfigMap whose key ends in ".pub", sorted by name;
// other entries are ignored. It fails when there is no .pub entry, and with every bad key
// (errors.Join), each named.
func ParseKeys(data map[string]string) ([]PublicKey, error) {
	var keys []PublicKey
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(data)) {
		if !strings.HasSuffix(name, ".pub") {
			continue
		}
		k, err := ParsePublicKey(name, []byte(data[name]))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		keys = append(keys, k)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(keys) == 0 {
		return nil, errors.New("no public key: no entry ends in .pub")
	}
	return keys, nil
}

// ReadKeysDir reads the keys of a mounted keys ConfigMap: the regular files (symlinks followed,
// as ConfigMap volumes link name → ..data/name) whose name ends in ".pub"; names starting with
// ".." (the volume's own links and directories) are skipped. Each file is read up to MaxKeySize.
func ReadKeysDir(dir string) ([]PublicKey, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading keys directory: %w", err)
	}
	data := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "..") || !strings.HasSuffix(name, ".pub") {
			continue
		}
		b, err := readKeyFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", name, err)
		}
		if b != nil {
			data[name] = string(b)
		}
	}
	keys, err := ParseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("keys in %s: %w", dir, err)
	}
	return keys, nil
}

// readKeyFile returns the content of path, nil if it is no regular file (after symlinks).
func readKeyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("stat: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxKeySize+1))
	if err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	if len(b) > MaxKeySize {
		return nil, fmt.Errorf("larger than %d bytes", MaxKeySize)
	}
	return b, nil
}

// KeySetID is a short stable id of a key set: the first 12 hex digits of the sha256 over its
// sorted fingerprints, whatever the keys' names or order.
func KeySetID(keys []PublicKey) string {
	fps := make([]string, len(keys))
	for i, k := range keys {
		fps[i] = k.Fingerprint
	}
	slices.Sort(fps)
	sum := sha256.Sum256([]byte(strings.Join(fps, "\n")))
	return hex.EncodeToString(sum[:])[:12]
}

// verify reports whether sig is k's signature of msg, as cosign verify --key accepts it
// (sigstore's signature.LoadVerifier with cosign's default hash, SHA-256): ECDSA ASN.1 over
// SHA-256 of msg, P-384 also over SHA-384 (what cosign sign writes with a P-384 key, verified
// by cosign with --signature-digest-algorithm=sha384); RSA PKCS#1 v1.5 over SHA-256; pure
// Ed25519 over msg.
func (k PublicKey) verify(msg, sig []byte) bool {
	switch pub := k.key.(type) {
	case *ecdsa.PublicKey:
		h256 := sha256.Sum256(msg)
		if ecdsa.VerifyASN1(pub, h256[:], sig) {
			return true
		}
		if pub.Curve == elliptic.P384() {
			h384 := sha512.Sum384(msg)
			return ecdsa.VerifyASN1(pub, h384[:], sig)
		}
	case *rsa.PublicKey:
		h := sha256.Sum256(msg)
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig) == nil
	case ed25519.PublicKey:
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(pub, msg, sig)
	}
	return false
}
