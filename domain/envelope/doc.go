// Package envelope is the cryptography of verlauf's encrypted-at-rest
// archive: the keys that only a user's login unlocks, the sealing of
// archived and queued messages, and the blind index that lets the server
// filter a user's archive by conversation partner without storing the
// partner's JID.
//
// The package is pure: it performs no I/O and reads no clock. Randomness
// comes from an io.Reader passed by the caller (crypto/rand.Reader in
// production), with one exception: the ephemeral key of SealDataKey is
// drawn from crypto/rand inside the standard library, which since Go 1.26
// ignores caller-supplied randomness for key generation. Only standard
// constructions are used, from the standard library and golang.org/x/crypto:
// X25519 and HPKE (RFC 9180, crypto/hpke), HKDF-SHA256 (RFC 5869),
// HMAC-SHA256 and XChaCha20-Poly1305.
//
// # Key hierarchy
//
//	password ──PBKDF2 (SCRAM, per hash)──▶ SaltedPassword ──HMAC──▶ ClientKey
//	                                                        (server stores H(ClientKey) only)
//	ClientKey ──HKDF-SHA256──▶ KEK (one per SCRAM hash: SHA-1, SHA-256)
//	KEK ──XChaCha20-Poly1305──▶ wraps the Identity:
//	        X25519 private key   (its public key is stored in clear)
//	        index key            (32 random bytes, keys the blind index)
//	public key ──HPKE──▶ seals each data key (32 random bytes)
//	data key ──XChaCha20-Poly1305──▶ seals each message record
//	index key ──HMAC-SHA256──▶ blind index term of a partner's bare JID
//
// KEK. Derived as HKDF-SHA256 with ikm = ClientKey, salt = 32 random bytes
// drawn at each wrap (stored beside the blob), and info = "verlauf kek v1",
// the user's bare JID and the hash name, each length-prefixed. SHA-1 and
// SHA-256 give different ClientKeys for one password, so the identity is
// wrapped once per hash and either SCRAM mechanism (or PLAIN, where the
// server derives ClientKey from the password with domain.SaltedPassword and
// domain.ClientKey) unlocks the same identity. The server learns ClientKey
// only during a successful login: from ClientProof XOR ClientSignature under
// SCRAM, from the password under PLAIN.
//
// Identity. The X25519 private key and the index key, wrapped together: both
// are needed only while the user is present, are created together (at
// registration, when the password is known) and must be replaced together
// (after an administrator's reset the old index terms point at records that
// can no longer be opened anyway). Keeping them in one blob means one AEAD
// operation per login and one thing to re-wrap on a password change.
// Sealing the index key to the public key instead would add a blob and an
// X25519 operation per login and buy nothing, since no index term is ever
// computed without the private key at hand: messages that arrive while the
// user is offline carry the partner's JID inside their sealed payload and
// are indexed at the next login.
//
// Data keys. Records are sealed with symmetric data keys, not with the
// public key, so that the costly public-key operation happens once per data
// key rather than once per message. A data key is sealed to the user's
// public key with HPKE base mode, suite DHKEM(X25519, HKDF-SHA256),
// HKDF-SHA256, ChaCha20-Poly1305 (the standard form of a "sealed box": an
// ephemeral key per sealing, both public keys bound into the key
// schedule). Sealing needs no secret of the user, so a message for an
// offline user is sealed at once. The sealed data key lives in the key store
// beside the log, the one mutable place where deleting something makes it
// gone. RotationPolicy says when to start a new data key (by default after a
// day or 10 000 records); archive and offline records use separate keys, so
// that the offline queue's key can be deleted after delivery without
// touching the history.
//
// Blind index. A record's partner is findable through
// HMAC-SHA256(index key, "verlauf blind index v1" ‖ partner bare JID). The
// server can match a query's term against stored terms but cannot compute a
// term, nor invert one, without the index key.
//
// # Binding and formats
//
// Every stored blob starts with a format version byte (1 today); a reader
// refuses a version it does not know (ErrUnknownVersion) so a later format
// can live beside this one. Every blob authenticates its context, so a blob
// copied to another user, id or purpose fails to open (ErrAuth):
//
//	wrapped identity  1 ‖ nonce(24) ‖ AEAD(priv ‖ index key)            105 bytes
//	                  KEK info: user, hash; AAD: version, user, hash, salt
//	sealed data key   1 ‖ HPKE enc(32) ‖ AEAD(data key)                  81 bytes
//	                  HPKE info: user, key id; AAD: version
//	sealed record     1 ‖ key id(16) ‖ nonce(24) ‖ AEAD(payload)  payload + 57 bytes
//	                  AAD: version, key id, nonce, user, kind, record id
//
// All context fields are length-prefixed and preceded by a label naming
// the purpose ("verlauf kek v1", "verlauf record v1", ...), so no input of
// one derivation can be mistaken for another's. A malformed blob yields
// ErrCorrupt, an unauthentic one ErrAuth; neither panics, and neither
// affects any other record.
//
// # Lifecycle
//
//   - Registration: NewIdentity; Wrap once per SCRAM hash with the new
//     password's ClientKeys; store the public key and the wrapped
//     identities; Wipe.
//   - Login: the SCRAM exchange (or PLAIN) yields ClientKey; Unwrap the
//     wrapped identity of that hash; check that Identity.PublicKey equals
//     the stored public key; open data keys as records are read; index the
//     records that arrived while the user was offline; Wipe every key when
//     the user's last session ends.
//   - A message for an offline user, or for an online user with history:
//     seal it under the current data key of its kind, creating and sealing
//     a new data key to the public key when RotationPolicy says so.
//   - Password change: the session's Identity is wrapped again under the
//     new ClientKeys; data keys and records are untouched.
//   - Administrator's reset (the old password is unknown): the old identity
//     cannot be recovered by anyone, so NewIdentity starts a new one. All
//     history and every queued message sealed to the old public key are
//     lost for good; the key store should delete the old sealed data keys.
//   - Account deletion: deleting the wrapped identities and sealed data keys
//     from the key store makes every record unreadable, in the log and in
//     every backup of the log.
//
// # Threat model
//
// This package protects data at rest. It is as strong as the user's
// password and no stronger, and it does nothing against the running server.
//
// Someone who holds a copy of the storage (event log, projections, key
// store, external stores, backups) and the configuration, but not a user's
// password, learns:
//
//   - that the account exists, its JID, and its public key;
//   - how many records it has, when each was written (record ids are
//     UUIDv7, events carry timestamps), of which kind, and the exact length
//     of each payload (a record is 57 bytes longer than its payload; no
//     padding is applied);
//   - which records share a data key, hence roughly when keys rotated;
//   - from the blind index, which records belong to the same conversation
//     partner and how large each conversation is, but not who the partner
//     is; combined with timing and the roster (which names contacts in
//     clear, by necessity, and is outside this promise) this can support
//     guesses;
//
// and does not learn any message body or the JID of any partner from the
// archive or the offline queue.
//
// The limits of that promise, stated for an auditor:
//
//   - Offline guessing. The SCRAM verifier on disk (salt, iteration count,
//     StoredKey) lets the holder of a copy test password guesses at the cost
//     of PBKDF2 per guess, and a correct guess opens the archive. A weak
//     password or a low iteration count weakens the archive accordingly,
//     and the attacker picks the cheaper of the two verifiers (SHA-1 at the
//     minimum of 4096 iterations is cheap on a GPU).
//   - Recorded logins. StoredKey plus one SCRAM exchange seen in clear gives
//     ClientKey (RFC 5802: ClientProof XOR HMAC(StoredKey, AuthMessage)),
//     and with it the archive. TLS protects the exchange; SASL payloads and
//     PLAIN passwords must never be logged.
//   - Password change does not change the key pair. A copy of the key store
//     made before the change still holds the identity wrapped under the old
//     password. If the old password may be known to an attacker, rotate
//     the identity instead: NewIdentity, then for each data key
//     OpenDataKey with the old identity and SealDataKey to the new public
//     key (records are not rewritten), then delete the old sealed keys.
//   - Shredding reaches as far as the key store's own backups: a data key
//     deleted today still exists in yesterday's backup of the key store.
//     Keep key-store backups short-lived.
//   - Someone who can write to the storage can replace the public key with
//     their own and read what is sealed to it until the user's next login,
//     where the PublicKey check above reveals it. They can also delete
//     records or roll the store back to an older copy; this package cannot
//     detect either.
//   - Not post-quantum. A future quantum computer could recover data keys
//     from sealed data keys in old copies ("harvest now, decrypt later").
//     The symmetric layers (KEK wrap, records) are not affected. The
//     version byte leaves room for a sealed-data-key format using the
//     hybrid ML-KEM-768 + X25519 KEM of crypto/hpke.
//
// A malicious or compromised running server can do everything: it sees
// every message in clear while routing it, learns each user's ClientKey at
// each login and can keep it, and can seal to a key of its own. Encryption
// at rest is not end-to-end encryption; for that, users need OMEMO or OTR,
// whose messages verlauf archives as opaque ciphertext (OMEMO) or never
// stores at all (OTR).
//
// # Keys in memory
//
// Identity and DataKey hold their secrets in fixed arrays and Wipe zeroes
// them, and the package zeroes its own temporary copies (KEKs, decrypted
// key material). In Go this narrows the exposure window; it cannot close
// it: the standard library keeps its own copies inside cipher, HMAC, HKDF
// and ecdh objects until the garbage collector reuses that memory; a
// growing goroutine stack is copied and the old copy is not cleared;
// ClientKeys and decrypted payloads belong to the caller; and memory may
// reach swap or a core dump. Deployments should disable core dumps and use
// no swap or encrypted swap. Keys are unwrapped only while a user has a
// session, so a memory dump exposes the users online at that moment, which
// a malicious running server could read anyway.
package envelope
