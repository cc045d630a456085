package envelope_test

import (
	"crypto/rand"
	"fmt"

	"github.com/google/uuid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/domain/envelope"
)

// The life of an archive: registration, a message sealed while the user is
// offline, and reading it at the next login.
func Example() {
	const user, partner = "alice@example.org", "bob@example.net"

	// Registration: the server knows the password once, derives the SCRAM
	// ClientKey per hash and stores only the wrapped identity and the
	// public key.
	salt := []byte("per-user-salt-16")
	sp, _ := domain.SaltedPassword(domain.HashSHA256, "correct horse", salt, 4096)
	ck, _ := domain.ClientKey(domain.HashSHA256, sp)
	id, pub, _ := envelope.NewIdentity(rand.Reader)
	wrapped, _ := envelope.Wrap(rand.Reader, id, user, domain.HashSHA256, ck)
	id.Wipe()

	// A message arrives while alice is offline: only the public key is
	// needed. The partner's JID travels inside the sealed payload.
	dk, _ := envelope.NewDataKey(rand.Reader, uuid.Must(uuid.NewV7()))
	sealedKey, _ := envelope.SealDataKey(pub, user, dk)
	aad := envelope.AAD{User: user, Kind: envelope.KindOffline, RecordID: uuid.Must(uuid.NewV7())}
	record, _ := envelope.Seal(rand.Reader, dk, aad, []byte(partner+"\x00hello"))
	dk.Wipe()

	// Next login: the SCRAM exchange yields ClientKey, which unwraps the
	// identity, which opens the data key, which opens the record; the
	// record is then indexed under the partner's blind index.
	session, err := envelope.Unwrap(wrapped, user, ck)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer session.Wipe()
	key, _ := session.OpenDataKey(user, sealedKey)
	defer key.Wipe()
	plain, _ := envelope.Open(key, aad, record)
	term, _ := session.BlindIndex(partner)
	fmt.Printf("%q, index term of %d bytes\n", plain, len(term))
	// Output: "bob@example.net\x00hello", index term of 32 bytes
}
