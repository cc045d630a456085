package userdata

// SCRAM-SHA-1 is mandatory in XMPP (RFC 6120); the verifiers other servers
// export are mostly SHA-1.
import "crypto/sha1"

func sha1Sum(b []byte) []byte {
	s := sha1.Sum(b)
	return s[:]
}
