// Package keystore is the small mutable key store that sits beside
// verlauf's immutable event log: the one place where forgetting deletes
// something. It holds, per user,
//
//   - the X25519 public key of the user's identity (in clear: the server
//     seals data keys to it while the user is offline);
//   - the identity wrapped once per SCRAM hash (envelope.WrappedIdentity):
//     only the user's login opens it;
//   - the data keys sealed to the public key (envelope.SealedDataKey) with
//     their metadata: kind (archive or offline), creation time, use count;
//   - for an account imported without its password only, until the
//     user's logins replace them: the interim keys its identity is
//     wrapped under, per SCRAM hash (Interim). While such a record exists,
//     the key store alone opens that user's identity.
//
// Records in the log are sealed under the data keys; deleting a data key
// (DeleteDataKey) or every key of a user (DeleteUser) crypto-shreds the
// records, in the log and in every backup of the log alike.
//
// # Making a delete a delete
//
// The store is Pebble, an LSM: a delete writes a tombstone, and the old
// value lives on in the write-ahead log and in sorted tables until a
// compaction drops it. The store therefore
//
//   - commits every write with a synced WAL write;
//   - after every delete, compacts the deleted key range (db.Compact, which
//     first flushes the memtable and so retires the WAL holding the value),
//     so the value leaves the live files at once rather than whenever
//     Pebble's background compactions would get there;
//   - disables Pebble's WAL recycling (a recycled log keeps old records in
//     its tail until they happen to be overwritten) and overwrites every
//     file Pebble deletes with zeros before unlinking it (shredFS).
//
// TestDeleteUserLeavesNoBytes checks that after a delete and a close, no
// file in the directory contains the deleted blobs. What this cannot reach
// is below the file system: a copy-on-write or journalling file system, an
// SSD's flash translation layer and snapshots may keep old blocks. And it
// cannot reach backups of the key store: a key deleted today lives on in
// yesterday's backup, so key-store backups should be short-lived (see
// package envelope, threat model).
//
// Compaction of a small range rewrites the tables that overlap it; the key
// store holds a few hundred bytes per key and user, so this is cheap for
// any realistic number of users, and it is what deletion is for.
//
// # Key layout
//
// Everything of one user lies under one prefix, so DeleteUser is one range
// delete and one compaction:
//
//	u/<bare jid>\x00p                    → public key (32 bytes)
//	u/<bare jid>\x00w<hash name>         → wrapped identity: salt len ‖ salt ‖ blob
//	u/<bare jid>\x00i                    → interim keys (see encodeInterim), rare
//	u/<bare jid>\x00k<key id: 16 bytes>  → data key record (see encodeDataKey)
//
// A bare JID never contains NUL, so no user's prefix is a prefix of
// another user's keys.
package keystore
