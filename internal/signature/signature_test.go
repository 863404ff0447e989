package signature

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	testDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	otherDig   = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	testRepo   = "ghcr.io/tracebloc/ingestor"
)

// signer is a test key pair; sign signs as cosign does for its key type.
type signer struct {
	name string
	priv crypto.Signer
	pem  string
}

func newSigner(t *testing.T, name string, priv crypto.Signer) signer {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return signer{name: name, priv: priv, pem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}
}

func ecdsaSigner(t *testing.T, name string, curve elliptic.Curve) signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newSigner(t, name, k)
}

func ed25519Signer(t *testing.T, name string) signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newSigner(t, name, k)
}

func rsaSigner(t *testing.T, name string, bits int) signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return newSigner(t, name, k)
}

// sign: ECDSA ASN.1 over SHA-256 (SHA-384 for P-384, as cosign sign's default), RSA PKCS#1 v1.5
// SHA-256, pure Ed25519.
func (s signer) sign(t *testing.T, msg []byte) []byte {
	t.Helper()
	var sig []byte
	var err error
	switch k := s.priv.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve == elliptic.P384() {
			h := sha512.Sum384(msg)
			sig, err = ecdsa.SignASN1(rand.Reader, k, h[:])
		} else {
			h := sha256.Sum256(msg)
			sig, err = ecdsa.SignASN1(rand.Reader, k, h[:])
		}
	case *rsa.PrivateKey:
		h := sha256.Sum256(msg)
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, h[:])
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, msg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func (s signer) key(t *testing.T) PublicKey {
	t.Helper()
	k, err := ParsePublicKey(s.name, []byte(s.pem))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// simplePayload is cosign's simple-signing payload (sigstore payload.Cosign.MarshalJSON).
func simplePayload(digest, ref, typ string) []byte {
	b, _ := json.Marshal(map[string]any{
		"critical": map[string]any{
			"identity": map[string]string{"docker-reference": ref},
			"image":    map[string]string{"docker-manifest-digest": digest},
			"type":     typ,
		},
		"optional": nil,
	})
	return b
}

// statementJSON is cosign 3's in-toto statement (sign.go signDigestBundle, protojson).
func statementJSON(digest, predicateType string) []byte {
	b, _ := json.Marshal(map[string]any{
		"_type":         InTotoStatementType,
		"subject":       []any{map[string]any{"digest": map[string]string{"sha256": strings.TrimPrefix(digest, "sha256:")}}},
		"predicateType": predicateType,
		"predicate":     map[string]any{},
	})
	return b
}

// bundleJSON is a bundle v0.3 with a DSSE envelope, as cosign 3 writes it with a key.
func bundleJSON(t *testing.T, s signer, payloadType string, statement []byte, tamper func(payload, sig []byte) ([]byte,
	[]byte)) []byte {
	t.Helper()
	sig := s.sign(t, PAE(payloadType, statement))
	if tamper != nil {
		statement, sig = tamper(statement, sig)
	}
	b, _ := json.Marshal(map[string]any{
		"mediaType":            BundleMediaType,
		"verificationMaterial": map[string]any{"publicKey": map[string]string{"hint": "aGludA=="}, "tlogEntries": []any{}},
		"dsseEnvelope": map[string]any{
			"payload":     base64.StdEncoding.EncodeToString(statement),
			"payloadType": payloadType,
			"signatures":  []any{map[string]string{"sig": base64.StdEncoding.EncodeToString(sig)}},
		},
	})
	return b
}

func TestParsePublicKey(t *testing.T) {
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ecPriv)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ecPriv)
	p256 := ecdsaSigner(t, "a.pub", elliptic.P256()).pem
	for _, tc := range []struct {
		name, pem, err string
	}{
		{name: "ECDSA P-256", pem: p256},
		{name: "ECDSA P-384", pem: ecdsaSigner(t, "k", elliptic.P384()).pem},
		{name: "Ed25519", pem: ed25519Signer(t, "k").pem},
		{name: "RSA 2048", pem: rsaSigner(t, "k", 2048).pem},
		{name: "surrounding whitespace", pem: "\n\n" + p256 + "\n\n"},
		{name: "ECDSA P-224", pem: ecdsaSigner(t, "k", elliptic.P224()).pem, err: "curve P-224 not supported"},
		{name: "ECDSA P-521", pem: ecdsaSigner(t, "k", elliptic.P521()).pem, err: "curve P-521 not supported"},
		{name: "RSA 1024", pem: newSigner(t, "k", rsaPriv).pem, err: "RSA key of 1024 bits"},
		{name: "EC private key", pem: string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})),
			err: `"EC PRIVATE KEY"`},
		{name: "PKCS#8 private key", pem: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})),
			err: `"PRIVATE KEY"`},
		{name: "certificate", pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", err: `"CERTIFICATE"`},
		{name: "garbage", pem: "not a key", err: "no PEM block"},
		{name: "bad DER", pem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", err: "parsing PKIX"},
		{name: "second block", pem: p256 + p256, err: "data after the PEM block"},
		{name: "text before", pem: "comment\n" + p256, err: "data before the PEM block"},
		{name: "empty", pem: "", err: "no PEM block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParsePublicKey("release.pub", []byte(tc.pem))
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("ParsePublicKey = %v", err)
			case tc.err == "" && (k.Name != "release.pub" || len(k.Fingerprint) != 64):
				t.Errorf("key %+v", k)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(),
				"release.pub")):
				t.Errorf("ParsePublicKey = %v, want an error naming release.pub with %q", err, tc.err)
			}
		})
	}
}

func TestParseKeys(t *testing.T) {
	a, b := ecdsaSigner(t, "a", elliptic.P256()).pem, ed25519Signer(t, "b").pem
	keys, err := ParseKeys(map[string]string{"z.pub": a, "b.pub": b, "README": "not a key"})
	if err != nil || len(keys) != 2 || keys[0].Name != "b.pub" || keys[1].Name != "z.pub" {
		t.Fatalf("ParseKeys = %v, %v; want b.pub, z.pub", keys, err)
	}
	if _, err := ParseKeys(map[string]string{"README": a}); err == nil || !strings.Contains(err.Error(), ".pub") {
		t.Errorf("no .pub entry: %v", err)
	}
	_, err = ParseKeys(map[string]string{"ok.pub": a, "bad1.pub": "x",
		"bad2.pub": "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n"})
	if err == nil || !strings.Contains(err.Error(), "bad1.pub") || !strings.Contains(err.Error(), "bad2.pub") ||
		strings.Contains(err.Error(), "ok.pub") {
		t.Errorf("bad keys: %v, want both named", err)
	}
	id := KeySetID(keys)
	if len(id) != 12 || KeySetID([]PublicKey{keys[1], keys[0]}) != id || KeySetID(keys[:1]) == id {
		t.Errorf("KeySetID %q not stable over order or not distinct", id)
	}
}

// TestReadKeysDir: a ConfigMap volume's layout, ..data symlinks and all.
func TestReadKeysDir(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "..2026_12_07_00_00_00.1")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(data, "release.pub"), []byte(ecdsaSigner(t, "r", elliptic.P256()).pem), 0o644))
	must(os.WriteFile(filepath.Join(data, "notes.txt"), []byte("x"), 0o644))
	must(os.Symlink(filepath.Base(data), filepath.Join(dir, "..data")))
	must(os.Symlink("..data/release.pub", filepath.Join(dir, "release.pub")))
	must(os.Symlink("..data/notes.txt", filepath.Join(dir, "notes.txt")))
	must(os.Mkdir(filepath.Join(dir, "sub.pub"), 0o755))
	keys, err := ReadKeysDir(dir)
	if err != nil || len(keys) != 1 || keys[0].Name != "release.pub" {
		t.Fatalf("ReadKeysDir = %v, %v", keys, err)
	}
	must(os.WriteFile(filepath.Join(dir, "big.pub"), make([]byte, MaxKeySize+1), 0o644))
	if _, err := ReadKeysDir(dir); err == nil || !strings.Contains(err.Error(), "big.pub") {
		t.Errorf("oversized key: %v", err)
	}
	if _, err := ReadKeysDir(t.TempDir()); err == nil {
		t.Error("empty directory: no error")
	}
}

func TestVerifySimpleSigning(t *testing.T) {
	p256, p384, ed, rs := ecdsaSigner(t, "p256.pub", elliptic.P256()), ecdsaSigner(t, "p384.pub", elliptic.P384()),
		ed25519Signer(t, "ed.pub"), rsaSigner(t, "rsa.pub", 2048)
	other := ecdsaSigner(t, "other.pub", elliptic.P256())
	good := simplePayload(testDigest, testRepo, SimpleSigningType)
	for _, tc := range []struct {
		name      string
		signer    signer
		payload   []byte
		sig       func(sig []byte) string
		keys      []signer
		repo      string
		wantKey   string
		errDetail string
	}{
		{name: "ECDSA P-256", signer: p256, payload: good, keys: []signer{p256}, wantKey: "p256.pub"},
		{name: "ECDSA P-384 (SHA-384)", signer: p384, payload: good, keys: []signer{p384}, wantKey: "p384.pub"},
		{name: "Ed25519", signer: ed, payload: good, keys: []signer{ed}, wantKey: "ed.pub"},
		{name: "RSA", signer: rs, payload: good, keys: []signer{rs}, wantKey: "rsa.pub"},
		{name: "two keys, the second matching", signer: p256, payload: good, keys: []signer{other, p256},
			wantKey: "p256.pub"},
		{name: "Docker Hub names normalized", signer: p256, payload: simplePayload(testDigest,
			"index.docker.io/library/busybox", SimpleSigningType),
			keys: []signer{p256}, repo: "docker.io/busybox", wantKey: "p256.pub"},
		{name: "claimed identity with a tag", signer: p256, payload: simplePayload(testDigest, testRepo+":prod",
			SimpleSigningType), keys: []signer{p256}, wantKey: "p256.pub"},
		{name: "wrong key", signer: other, payload: good, keys: []signer{p256}, errDetail: "does not verify"},
		{name: "tampered signature", signer: p256, payload: good, keys: []signer{p256},
			sig:       func(s []byte) string { s[len(s)-1] ^= 1; return base64.StdEncoding.EncodeToString(s) },
			errDetail: "does not verify"},
		{name: "signature not base64", signer: p256, payload: good, keys: []signer{p256},
			sig: func([]byte) string { return "!!" }, errDetail: "not base64"},
		{name: "another digest", signer: p256, payload: simplePayload(otherDig, testRepo, SimpleSigningType),
			keys: []signer{p256}, errDetail: "not this digest"},
		{name: "another repository", signer: p256, payload: simplePayload(testDigest, "ghcr.io/evil/ingestor",
			SimpleSigningType), keys: []signer{p256}, errDetail: "docker-reference"},
		{name: "no docker-reference", signer: p256, payload: simplePayload(testDigest, "", SimpleSigningType),
			keys: []signer{p256}, errDetail: "docker-reference"},
		{name: "wrong type", signer: p256, payload: simplePayload(testDigest, testRepo, "atomic container signature"),
			keys: []signer{p256}, errDetail: "critical.type"},
		{name: "payload not JSON", signer: p256, payload: []byte("{"), keys: []signer{p256}, errDetail: "parsing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := tc.signer.sign(t, tc.payload)
			sig := base64.StdEncoding.EncodeToString(raw)
			if tc.sig != nil {
				sig = tc.sig(raw)
			}
			var keys []PublicKey
			for _, s := range tc.keys {
				keys = append(keys, s.key(t))
			}
			repo := tc.repo
			if repo == "" {
				repo = testRepo
			}
			key, err := VerifySimpleSigning(tc.payload, sig, testDigest, repo, keys)
			checkVerify(t, key, err, tc.wantKey, tc.errDetail)
		})
	}
	t.Run("tampered payload", func(t *testing.T) {
		sig := base64.StdEncoding.EncodeToString(p256.sign(t, good))
		tampered := simplePayload(testDigest, testRepo+"x", SimpleSigningType)
		_, err := VerifySimpleSigning(tampered, sig, testDigest, testRepo, []PublicKey{p256.key(t)})
		checkVerify(t, "", err, "", "does not verify")
	})
	t.Run("P-384 over SHA-256 (cosign verify's default)", func(t *testing.T) {
		h := sha256.Sum256(good)
		raw, err := ecdsa.SignASN1(rand.Reader, p384.priv.(*ecdsa.PrivateKey), h[:])
		if err != nil {
			t.Fatal(err)
		}
		key, err := VerifySimpleSigning(good, base64.StdEncoding.EncodeToString(raw), testDigest, testRepo,
			[]PublicKey{p384.key(t)})
		checkVerify(t, key, err, "p384.pub", "")
	})
	t.Run("Ed25519ph is not pure Ed25519", func(t *testing.T) {
		h := sha512.Sum512(good)
		raw, err := ed.priv.(ed25519.PrivateKey).Sign(rand.Reader, h[:], &ed25519.Options{Hash: crypto.SHA512})
		if err != nil {
			t.Fatal(err)
		}
		_, err = VerifySimpleSigning(good, base64.StdEncoding.EncodeToString(raw), testDigest, testRepo,
			[]PublicKey{ed.key(t)})
		checkVerify(t, "", err, "", "does not verify")
	})
}

func TestVerifyBundle(t *testing.T) {
	p256, ed := ecdsaSigner(t, "p256.pub", elliptic.P256()), ed25519Signer(t, "ed.pub")
	other := ecdsaSigner(t, "other.pub", elliptic.P256())
	good := statementJSON(testDigest, CosignSignPredicateType)
	edit := func(f func(m map[string]any)) func(b []byte) []byte {
		return func(b []byte) []byte {
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			f(m)
			out, _ := json.Marshal(m)
			return out
		}
	}
	for _, tc := range []struct {
		name        string
		signer      signer
		payloadType string
		statement   []byte
		tamper      func(payload, sig []byte) ([]byte, []byte)
		edit        func([]byte) []byte
		keys        []signer
		wantKey     string
		errDetail   string
	}{
		{name: "ECDSA P-256", signer: p256, statement: good, keys: []signer{p256}, wantKey: "p256.pub"},
		{name: "Ed25519", signer: ed, statement: good, keys: []signer{ed}, wantKey: "ed.pub"},
		{name: "two keys, the second matching", signer: p256, statement: good, keys: []signer{other, p256},
			wantKey: "p256.pub"},
		{name: "wrong key", signer: other, statement: good, keys: []signer{p256}, errDetail: "does not verify"},
		{name: "tampered payload", signer: p256, statement: good, keys: []signer{p256},
			tamper:    func(p, s []byte) ([]byte, []byte) { return statementJSON(otherDig, CosignSignPredicateType), s },
			errDetail: "does not verify"},
		{name: "tampered signature", signer: p256, statement: good, keys: []signer{p256},
			tamper: func(p, s []byte) ([]byte, []byte) { s[len(s)-1] ^= 1; return p, s }, errDetail: "does not verify"},
		{name: "another digest", signer: p256, statement: statementJSON(otherDig, CosignSignPredicateType),
			keys: []signer{p256}, errDetail: "no subject"},
		{name: "wrong predicateType", signer: p256, statement: statementJSON(testDigest, "https://slsa.dev/provenance/v1"),
			keys: []signer{p256}, errDetail: "predicateType"},
		{name: "wrong payloadType", signer: p256, payloadType: "application/json", statement: good, keys: []signer{p256},
			errDetail: "payloadType"},
		{name: "wrong statement _type", signer: p256,
			statement: edit(func(m map[string]any) { m["_type"] = "https://in-toto.io/Statement/v0.1" })(good),
			keys:      []signer{p256}, errDetail: "_type"},
		{name: "subject digest not hex", signer: p256, keys: []signer{p256}, errDetail: "not hex",
			statement: edit(func(m map[string]any) {
				m["subject"] = append(m["subject"].([]any), map[string]any{"digest": map[string]string{"sha512": "zz"}})
			})(good)},
		{name: "old bundle version", signer: p256, statement: good, keys: []signer{p256}, errDetail: "media type",
			edit: edit(func(m map[string]any) { m["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.2" })},
		{name: "certificate, not a key", signer: p256, statement: good, keys: []signer{p256}, errDetail: "certificate",
			edit: edit(func(m map[string]any) {
				m["verificationMaterial"] = map[string]any{"certificate": map[string]string{"rawBytes": "AA=="}}
			})},
		{name: "two signatures", signer: p256, statement: good, keys: []signer{p256}, errDetail: "exactly 1",
			edit: edit(func(m map[string]any) {
				env := m["dsseEnvelope"].(map[string]any)
				sigs := env["signatures"].([]any)
				env["signatures"] = append(sigs, sigs[0])
			})},
		{name: "message signature", signer: p256, statement: good, keys: []signer{p256}, errDetail: "no DSSE envelope",
			edit: edit(func(m map[string]any) { delete(m, "dsseEnvelope"); m["messageSignature"] = map[string]any{} })},
		{name: "not JSON", signer: p256, statement: good, keys: []signer{p256}, errDetail: "parsing the bundle",
			edit: func([]byte) []byte { return []byte("{") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pt := tc.payloadType
			if pt == "" {
				pt = InTotoPayloadType
			}
			b := bundleJSON(t, tc.signer, pt, tc.statement, tc.tamper)
			if tc.edit != nil {
				b = tc.edit(b)
			}
			var keys []PublicKey
			for _, s := range tc.keys {
				keys = append(keys, s.key(t))
			}
			key, err := VerifyBundle(b, testDigest, keys)
			checkVerify(t, key, err, tc.wantKey, tc.errDetail)
		})
	}
}

func checkVerify(t *testing.T, key string, err error, wantKey, errDetail string) {
	t.Helper()
	if errDetail == "" {
		if err != nil || key != wantKey {
			t.Fatalf("verified by %q, %v; want %q", key, err, wantKey)
		}
		return
	}
	if Reason(err) != ReasonInvalid || !strings.Contains(err.Error(), errDetail) {
		t.Fatalf("error %v (reason %q), want %s with %q", err, Reason(err), ReasonInvalid, errDetail)
	}
	if !strings.HasPrefix(err.Error(), ReasonInvalid+": ") {
		t.Errorf("error %q does not start with the reason", err)
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{Reason: ReasonMissing, Digest: testDigest, Repository: testRepo, Keys: []string{"a.pub", "b.pub"},
		Detail: "looked in: x"}
	want := "signature-missing: no signature of " + testDigest + " in " + testRepo + " by key a.pub, b.pub (looked in: x)"
	if e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
	if Reason(e) != ReasonMissing || Reason(os.ErrNotExist) != "" {
		t.Error("Reason")
	}
}
