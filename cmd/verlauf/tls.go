package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// loadCertificate returns the configured certificate, or the self-signed one
// under dataDir/tls, generating it on first start. The generated key is
// written 0600 and reused, so clients that pinned it keep working.
func loadCertificate(cfg TLSConfig, domain, dataDir string) (tls.Certificate, bool, error) {
	if cfg.CertFile != "" {
		c, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return c, false, fmt.Errorf("tls: %w", err)
		}
		return c, false, nil
	}
	dir := filepath.Join(dataDir, "tls")
	certPath, keyPath := filepath.Join(dir, domain+".crt"), filepath.Join(dir, domain+".key")
	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err == nil {
		return c, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return c, false, fmt.Errorf("tls: self-signed certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return c, false, fmt.Errorf("tls: %w", err)
	}
	certPEM, keyPEM, err := selfSigned(domain, time.Now())
	if err != nil {
		return c, false, err
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return c, false, fmt.Errorf("tls: %w", err)
	}
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return c, false, fmt.Errorf("tls: %w", err)
	}
	c, err = tls.X509KeyPair(certPEM, keyPEM)
	return c, true, err
}

// selfSigned makes a P-256 certificate for domain, valid for ten years, with
// the XMPP SAN forms a client may check (DNS names for the domain and its
// wildcard).
func selfSigned(domain string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("tls: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: domain, Organization: []string{"verlauf self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{domain, "*." + domain},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: self-sign: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// serverTLS is the TLS policy of every listener: TLS 1.2 and 1.3 only.
func serverTLS(cert tls.Certificate, alpn ...string) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   alpn,
	}
}
