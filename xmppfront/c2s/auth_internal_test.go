package c2s

import (
	"context"
	"fmt"
	"testing"

	"verlauf.im/verlauf/xmppfront/sasl"
)

// A -PLUS attempt with a channel binding the server does not offer guesses
// no password and must not count towards throttling; a wrong proof must.
func TestBindingMismatchIsNotAGuess(t *testing.T) {
	lookup := func(context.Context, string, sasl.Hash) (sasl.Credentials, error) {
		return sasl.Credentials{}, fmt.Errorf("no such user: %w", sasl.ErrUnknownUser)
	}
	cfg := sasl.Config{Lookup: lookup, MockSecret: make([]byte, 32), TLS: true,
		ChannelBindings: []sasl.ChannelBinding{{Type: sasl.TLSExporter, Data: make([]byte, 32)}}}
	tests := []struct {
		mech, first string
		mismatch    bool
	}{
		{sasl.ScramSHA256Plus, "p=tls-unique,,n=alice,r=abcdefgh", true},
		{sasl.ScramSHA256, "y,,n=alice,r=abcdefgh", true},
		{sasl.ScramSHA256, "p=tls-exporter,,n=alice,r=abcdefgh", true},
		{sasl.ScramSHA256, "n,,n=alice,r=abc,de", false},
	}
	for _, tt := range tests {
		s, err := sasl.NewServer(tt.mech, cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = s.Step(context.Background(), []byte(tt.first))
		if err == nil {
			t.Fatalf("%s %q was accepted", tt.mech, tt.first)
		}
		if got := bindingMismatch(err); got != tt.mismatch {
			t.Errorf("%s %q: bindingMismatch(%v) = %v, want %v", tt.mech, tt.first, err, got, tt.mismatch)
		}
	}
}
