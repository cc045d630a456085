// Package archive is the application service of verlauf's encrypted
// message history and offline queue (issue 4): the key lifecycle (Keys),
// the archive writer (Store), MAM queries (Query), indexing at login
// (IndexPending), the offline queue (Queue, Drain, Delivered) and the
// archive preferences (Archives, SetPrefs). It speaks no XMPP: the MAM,
// carbons and offline handlers of xmppfront call it, as the accounts
// service is called by every front end.
//
// # What is stored where
//
//	event log (eventstore)      archive-<user>: archive.message_stored (sealed),
//	                            archive.partner_indexed, archive.forgotten
//	                            offline-<user>: offline.message_queued (sealed),
//	                            offline.delivered
//	                            prefs-<user>: archive.prefs_set
//	MAM index (projections)     per user: archive id → revision, key id, term and a
//	                            copy of the sealed record; term → archive ids; counts
//	key store (keystore)        per user: public key, identity wrapped per SCRAM
//	                            hash, data keys sealed to the public key
//
// A record's plaintext (domain.SealedMessage) is the stanza, the
// partner's bare JID, the direction and the time; it is sealed with
// XChaCha20-Poly1305 under a data key, bound to the user, the record kind
// and the record id (package domain/envelope has the key hierarchy and
// the threat model).
//
// # What is in clear
//
// In the log, the index and the key store, for anyone with a copy of the
// disks and the configuration: the user's own JID (stream names, keys),
// each record's id and hence the time it was stored (UUIDv7, to the
// millisecond), the event time, the record's length (stanza + partner +
// 67 bytes), which data key sealed it, how many records there are, which
// records share a partner (blind index terms, not who), which offline
// messages were delivered, and the archive preferences (whose always/never
// lists name JIDs by necessity, like the roster). Never a body, never a
// partner's JID from the archive or the offline queue.
//
// # Lifecycle
//
//   - Registration: accounts' OnRegistered hook → Keys.Provision with the
//     new password's ClientKeys (one wrap per SCRAM hash).
//   - Import without the password (an operator's bulk import from SCRAM
//     verifiers): Keys.ProvisionInterim wraps the identity under interim
//     keys the key store holds until the user's logins (package userdata
//     says what protects the history meanwhile).
//   - Login: the SASL layer learns the ClientKey (SCRAM: ClientProof XOR
//     ClientSignature; PLAIN: ClientKeyFromPassword) → Keys.Reseal with
//     every ClientKey the login gave (one key-store lookup unless the
//     account is still under interim keys), then Keys.Unlock, which
//     checks the stored public key against the identity. Then
//     IndexPending (messages archived while the user was away) and, at
//     initial presence, Drain → deliver with <delay> → Delivered.
//   - Session end: Keys.Release; the last one wipes the identity and the
//     data keys opened with it.
//   - A message: the router asks Archives for each local side; for each
//     side that keeps history it takes NewID (the <stanza-id>) before
//     delivery and calls StoreWithID, which needs only the public key, so
//     it works for an offline user. For a local recipient with no online
//     resource it calls Queue (never for OTR or no-store messages).
//   - Password change: accounts' OnPasswordChanged hook → Keys.Rewrap. In
//     a session (or with the old ClientKeys) the identity is wrapped
//     again; after an administrator's reset with the user offline, a new
//     identity replaces it and the old history and queue are lost for
//     good (Replaced).
//   - Deletion: accounts' OnDeleted hook → Keys.Shred: every key of the
//     user is deleted and compacted out of the key store; the sealed
//     records in the log (and its backups) can no longer be opened.
//
// # Data keys
//
// The data key that seals new records of a user and kind lives in memory
// (it was made here, sealed to the public key, and stored before its
// first use); it rotates per envelope.RotationPolicy, and a restart simply
// starts a new one, since an existing key cannot be reopened without the
// user's password. Archive and offline records use separate keys. An
// offline key stops sealing when the queue is drained, so that once its
// batch is delivered Delivered can delete it without touching messages
// queued later.
package archive
