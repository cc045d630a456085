package sasl_test

import (
	"context"
	"encoding/base64"
	"fmt"

	"verlauf.im/verlauf/xmppfront/sasl"
)

// A c2s stream selects the mechanism named in <auth/>, then feeds the
// decoded payloads to Step until it is done or fails.
func ExampleServer() {
	salt := []byte("per-user random salt")
	_, stored, _ := sasl.DeriveKeys(sasl.SHA256, "pencil", salt, 4096) // at registration
	cfg := sasl.Config{
		Lookup: func(_ context.Context, user string, h sasl.Hash) (sasl.Credentials, error) {
			if user != "juliet" || h != sasl.SHA256 {
				return sasl.Credentials{}, sasl.ErrUnknownUser
			}
			return stored, nil
		},
		TLS:        true,
		MockSecret: []byte("a server-wide secret of 32 bytes"),
	}
	fmt.Println(sasl.Mechanisms(cfg.TLS, cfg.ChannelBindings))

	s, err := sasl.NewServer("PLAIN", cfg)
	if err != nil {
		fmt.Println("<failure><" + sasl.ConditionOf(err) + "/></failure>")
		return
	}
	payload, _ := base64.StdEncoding.DecodeString("AGp1bGlldABwZW5jaWw=") // "\x00juliet\x00pencil"
	if _, done, err := s.Step(context.Background(), payload); err != nil {
		fmt.Println("<failure><" + sasl.ConditionOf(err) + "/></failure>")
		return
	} else if done {
		r := s.Result()
		fmt.Println("<success/>", r.Username, len(r.ClientKey))
	}
	// Output:
	// [SCRAM-SHA-256 SCRAM-SHA-1 PLAIN]
	// <success/> juliet 32
}
