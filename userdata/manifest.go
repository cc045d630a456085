package userdata

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// maxTrailer bounds the manifest at the end of a file.
const maxTrailer = 64 << 10

// Verify reads an export to its end and checks it against the manifest at
// its end: the byte count and the SHA-256 of everything before the
// manifest. It returns the manifest, or an error wrapping ErrVerify.
//
// The check proves the file whole (not truncated, not damaged in
// transit), not authentic: whoever can change the file can write a new
// manifest. Memory is bounded: only the last 64 KiB are held.
func Verify(r io.Reader) (Manifest, error) {
	h := sha256.New()
	var n int64
	tail := make([]byte, 0, 2*maxTrailer)
	buf := make([]byte, 32<<10)
	for {
		k, err := r.Read(buf)
		tail = append(tail, buf[:k]...)
		if len(tail) > maxTrailer {
			cut := len(tail) - maxTrailer
			h.Write(tail[:cut])
			n += int64(cut)
			tail = append(tail[:0], tail[cut:]...)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return Manifest{}, fmt.Errorf("userdata: verify: %w", err)
		}
	}
	var body []byte
	var m Manifest
	if i := bytes.LastIndex(tail, []byte(manifestMarker)); i >= 0 {
		body = tail[i+len(manifestMarker):]
		end := bytes.LastIndex(body, []byte(" -->"))
		if end < 0 {
			return Manifest{}, fmt.Errorf("%w: manifest comment not closed", ErrVerify)
		}
		if err := json.Unmarshal(body[:end], &m); err != nil {
			return Manifest{}, fmt.Errorf("%w: manifest: %v", ErrVerify, err)
		}
		h.Write(tail[:i])
		n += int64(i)
	} else {
		i := bytes.LastIndex(tail, []byte("\n"+jsonManifestMarker))
		if i >= 0 {
			i++
		} else if bytes.HasPrefix(tail, []byte(jsonManifestMarker)) && n == 0 {
			i = 0
		} else {
			return Manifest{}, fmt.Errorf("%w: no manifest at the end", ErrVerify)
		}
		if err := json.Unmarshal(bytes.TrimSpace(tail[i:]), &m); err != nil {
			return Manifest{}, fmt.Errorf("%w: manifest: %v", ErrVerify, err)
		}
		h.Write(tail[:i])
		n += int64(i)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	switch {
	case n != m.Bytes:
		return m, fmt.Errorf("%w: %d bytes, the manifest says %d", ErrVerify, n, m.Bytes)
	case !strings.EqualFold(sum, m.SHA256):
		return m, fmt.Errorf("%w: SHA-256 %s, the manifest says %s", ErrVerify, sum, m.SHA256)
	}
	return m, nil
}
