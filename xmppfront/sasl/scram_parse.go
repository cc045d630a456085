package sasl

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// This file parses the client messages of RFC 5802 §7. Each failure comes
// back as an *Error carrying the server-error value to report.

// clientFirst is a parsed client-first-message.
type clientFirst struct {
	gs2Header string // "n,,", "y,a=x,", "p=tls-exporter,," …: echoed in c=
	cbFlag    byte   // 'n', 'y' or 'p'
	cbName    string // with cbFlag 'p'
	authzid   string // unescaped, "" if absent
	bare      string // client-first-message-bare, part of AuthMessage
	username  string // unescaped, not yet prepared
	nonce     string // c-nonce
}

// clientFinal is a parsed client-final-message.
type clientFinal struct {
	withoutProof string // client-final-message-without-proof
	cbind        string // base64 value of c=
	nonce        string // value of r=
	proof        string // base64 value of p=
}

func malformed(serverError, format string, args ...any) *Error {
	return fail(MalformedRequest, serverError, fmt.Errorf(format, args...))
}

// checkText rejects what no SCRAM message may contain anywhere.
func checkText(msg string) error {
	if !utf8.ValidString(msg) {
		return malformed(errInvalidEncoding, "message is not UTF-8")
	}
	if strings.IndexByte(msg, 0) >= 0 {
		return malformed(errInvalidEncoding, "message contains NUL")
	}
	return nil
}

func parseClientFirst(msg string) (clientFirst, error) {
	var cf clientFirst
	if err := checkText(msg); err != nil {
		return cf, err
	}
	// gs2-header = gs2-cbind-flag "," [ authzid ] ","
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok {
		return cf, malformed(errInvalidEncoding, "no GS2 header")
	}
	switch {
	case flag == "n" || flag == "y":
		cf.cbFlag = flag[0]
	case strings.HasPrefix(flag, "p="):
		cf.cbFlag = 'p'
		cf.cbName = flag[2:]
		if !validCBName(cf.cbName) {
			return cf, malformed(errInvalidEncoding, "bad cb-name %q", cf.cbName)
		}
	default:
		return cf, malformed(errInvalidEncoding, "bad gs2-cbind-flag %q", flag)
	}
	az, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return cf, malformed(errInvalidEncoding, "GS2 header not terminated")
	}
	if az != "" {
		v, ok := strings.CutPrefix(az, "a=")
		if !ok {
			return cf, malformed(errInvalidEncoding, "bad authzid field")
		}
		u, err := unescapeSaslname(v)
		if err != nil {
			return cf, fail(MalformedRequest, errInvalidEncoding, fmt.Errorf("authzid: %w", err))
		}
		cf.authzid = u
	}
	cf.gs2Header = msg[:len(msg)-len(bare)]
	cf.bare = bare

	// client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
	attrs := strings.Split(bare, ",")
	if err := checkAttrs(attrs); err != nil {
		return cf, err
	}
	if len(attrs) < 2 || attrs[0][0] != 'n' || attrs[1][0] != 'r' {
		return cf, malformed(errInvalidEncoding, "client-first-message-bare must start with n= and r=")
	}
	u, err := unescapeSaslname(attrs[0][2:])
	if err != nil {
		return cf, fail(MalformedRequest, errInvalidUsernameEncoding, fmt.Errorf("username: %w", err))
	}
	cf.username = u
	cf.nonce = attrs[1][2:]
	if !printable(cf.nonce) {
		return cf, malformed(errInvalidEncoding, "nonce is not printable")
	}
	return cf, nil
}

func parseClientFinal(msg string) (clientFinal, error) {
	var cf clientFinal
	if err := checkText(msg); err != nil {
		return cf, err
	}
	// client-final-message = channel-binding "," nonce ["," extensions] "," proof
	attrs := strings.Split(msg, ",")
	if err := checkAttrs(attrs); err != nil {
		return cf, err
	}
	last := len(attrs) - 1
	if len(attrs) < 3 || attrs[0][0] != 'c' || attrs[1][0] != 'r' || attrs[last][0] != 'p' {
		return cf, malformed(errInvalidEncoding, "client-final-message must be c=, r=, …, p=")
	}
	for _, a := range attrs[2:last] {
		if a[0] == 'c' || a[0] == 'r' || a[0] == 'p' {
			return cf, malformed(errInvalidEncoding, "repeated attribute %c", a[0])
		}
	}
	cf.withoutProof = msg[:len(msg)-len(attrs[last])-1]
	cf.cbind = attrs[0][2:]
	cf.nonce = attrs[1][2:]
	cf.proof = attrs[last][2:]
	return cf, nil
}

// checkAttrs checks that every element is attr-val (ALPHA "=" 1*value-char)
// and that none is the reserved m= (RFC 5802 §5.1: its presence MUST fail
// the authentication). Other unknown attributes are ignored, as required.
func checkAttrs(attrs []string) error {
	for _, a := range attrs {
		if len(a) < 3 || a[1] != '=' || !isAlpha(a[0]) {
			return malformed(errInvalidEncoding, "malformed attribute %q", a)
		}
		if a[0] == 'm' {
			return malformed(errExtensionsNotSupported, "mandatory extension m=")
		}
	}
	return nil
}

// unescapeSaslname undoes RFC 5802's saslname escaping: "=2C" is ",",
// "=3D" is "=", any other "=" is an error.
func unescapeSaslname(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty saslname")
	}
	if strings.IndexByte(s, '=') < 0 {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", errors.New("bad escape in saslname")
		}
		i += 2
	}
	return b.String(), nil
}

// printable is RFC 5802's nonce alphabet: %x21-7E except ",".
func printable(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// validCBName is 1*(ALPHA / DIGIT / "." / "-").
func validCBName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && (c < '0' || c > '9') && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
