package envelope_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/domain/envelope"
)

// encodings returns the forms in which needle could show up in storage:
// raw, hex (both cases) and base64 (standard and URL alphabets) at each of
// the three byte alignments. For base64 only the part of the encoding that
// does not depend on the neighbouring bytes is kept, so that a needle
// embedded anywhere in a larger base64 text is still found.
func encodings(needle []byte) [][]byte {
	out := [][]byte{
		needle,
		[]byte(hex.EncodeToString(needle)),
		[]byte(strings.ToUpper(hex.EncodeToString(needle))),
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for shift := range 3 {
			s := enc.EncodeToString(append(make([]byte, shift), needle...))
			start := 0
			if shift > 0 {
				start = 4
			}
			out = append(out, []byte(s[start:len(s)-4]))
		}
	}
	return out
}

// leaks returns a description of the first encoding of a needle found in
// a haystack, or "".
func leaks(haystacks map[string][]byte, needles map[string][]byte) string {
	for hn, h := range haystacks {
		for nn, n := range needles {
			for i, form := range encodings(n) {
				if bytes.Contains(h, form) {
					return nn + " (form " + string(rune('0'+i)) + ") in " + hn
				}
			}
		}
	}
	return ""
}

// TestSealedOutputLeaksNoPlaintext checks, for everything this package
// produces for storage, that neither a message body nor the partner's JID
// can be found in it, in any encoding the project stores bytes in.
func TestSealedOutputLeaksNoPlaintext(t *testing.T) {
	const body = "zebrafish-quokka-marmalade-4711"
	payload, err := json.Marshal(map[string]string{
		"with":   bob,
		"stanza": "<message to='" + bob + "'><body>" + body + "</body></message>",
	})
	if err != nil {
		t.Fatal(err)
	}
	needles := map[string][]byte{"body": []byte(body), "partner": []byte(bob)}

	id, pub := newIdentity(t, 1)
	w, err := envelope.Wrap(testRand(2), id, alice, domain.HashSHA256, clientKey(t, domain.HashSHA256, "pw"))
	if err != nil {
		t.Fatal(err)
	}
	dk := newDataKey(t, 3)
	sdk, err := envelope.SealDataKey(pub, alice, dk)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := envelope.Seal(testRand(4), dk, envelope.AAD{User: alice, Kind: envelope.KindOffline, RecordID: uuid.Must(uuid.NewV7())}, payload)
	if err != nil {
		t.Fatal(err)
	}
	bi, err := id.BlindIndex(bob)
	if err != nil {
		t.Fatal(err)
	}
	sdkJSON, _ := json.Marshal(sdk)
	wJSON, _ := json.Marshal(w)
	stored := map[string][]byte{
		"sealed record":            rec,
		"sealed record (base64)":   []byte(base64.StdEncoding.EncodeToString(rec)),
		"sealed record (hex)":      []byte(hex.EncodeToString(rec)),
		"sealed data key (JSON)":   sdkJSON,
		"wrapped identity (JSON)":  wJSON,
		"blind index":              bi[:],
		"blind index (hex)":        []byte(hex.EncodeToString(bi[:])),
		"sealed data key (binary)": sdk.Blob,
	}

	t.Run("detector finds leaks", func(t *testing.T) {
		// Without this, a broken detector would pass everything.
		leaky := map[string][]byte{
			"raw":    append([]byte("prefix"), payload...),
			"hex":    []byte(hex.EncodeToString(payload)),
			"base64": []byte(base64.StdEncoding.EncodeToString(append([]byte("xy"), payload...))),
		}
		for name, h := range leaky {
			for nn, n := range needles {
				if leaks(map[string][]byte{name: h}, map[string][]byte{nn: n}) == "" {
					t.Errorf("detector missed %s in %s", nn, name)
				}
			}
		}
	})
	if where := leaks(stored, needles); where != "" {
		t.Fatalf("found %s", where)
	}
}
