package ociimage

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// CABundle returns the image's CA bundle in PEM: the public roots of Go's fallback bundle
// (golang.org/x/crypto/x509roots/fallback, Mozilla NSS), in its order, then every certificate
// of extra. A root NSS distrusts after a date is left out: a PEM file cannot carry that
// constraint, and trusting it unconstrained would accept certificates NSS refuses. Each extra
// PEM must hold at least one CA certificate and nothing but certificates.
func CABundle(extra ...[]byte) ([]byte, error) {
	var buf bytes.Buffer
	for root := range bundle.Roots() {
		if root.Constraint != nil {
			continue
		}
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate}); err != nil {
			return nil, fmt.Errorf("encoding a fallback root: %w", err)
		}
	}
	for i, data := range extra {
		certs, err := parseCAs(data)
		if err != nil {
			return nil, fmt.Errorf("extra CA %d: %w", i, err)
		}
		for _, c := range certs {
			if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}); err != nil {
				return nil, fmt.Errorf("extra CA %d: encoding: %w", i, err)
			}
		}
	}
	return buf.Bytes(), nil
}

func parseCAs(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(bytes.TrimSpace(rest)) > 0 {
				return nil, errors.New("trailing data that is not PEM")
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q is not a CERTIFICATE", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate: %w", err)
		}
		if !c.IsCA {
			return nil, fmt.Errorf("certificate %q is not a CA", c.Subject)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}
