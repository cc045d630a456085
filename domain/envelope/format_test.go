package envelope_test

import (
	"testing"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/domain/envelope"
)

// The package documentation states the stored sizes for auditors and for
// capacity planning; this keeps the statement true.
func TestFormatSizesMatchDoc(t *testing.T) {
	id, pub := newIdentity(t, 1)
	w, err := envelope.Wrap(testRand(2), id, alice, domain.HashSHA1, clientKey(t, domain.HashSHA1, "pw"))
	if err != nil {
		t.Fatal(err)
	}
	sdk, err := envelope.SealDataKey(pub, alice, newDataKey(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"wrapped identity", len(w.Blob), 105},
		{"wrap salt", len(w.Salt), 32},
		{"sealed data key", len(sdk.Blob), 81},
		{"record overhead", envelope.Overhead, 57},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d bytes, documented as %d", c.name, c.got, c.want)
		}
	}
}
